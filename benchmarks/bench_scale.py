"""Scale: lineage over 100,000 packages, ``ls``/``show`` at 1,000,000, 8 concurrent
writers on PostgreSQL, and ``verify --all`` against ``hashlib.sha256``.

The registries of the query sections are generated, not put: each package (one file;
a quarter with new bytes, the rest sharing a blob of an earlier package) becomes a
``PackageRegistered`` event (and ``BlobStored`` for new bytes; a ``TagMoved`` for every
fifth version), appended through ``EventLog.append`` and projected in the same
transaction, as ``Ledger.record`` does. Packages come in chains of 25 (each one's input
is the one before; one in ten also has a random earlier input), 10,000 names, four
packages per run id. Queries are library calls in a warm process (what the HTTP gateway
and Dagster do; the CLI adds its start-up), each repeated with varied arguments.

- **lineage**: ``lineage(ref, depth=20)`` upstream from chain ends and downstream from
  chain starts over 100,000 packages, SQLite and PostgreSQL: p99 < 50 ms.
- **queries**: ``ls`` with filters (``list_packages``) and ``show`` (``describe``) at
  1,000,000 packages (``--quick``: 20,000), SQLite and PostgreSQL: p99 < 50 ms each.
- **writers**: 8 processes putting 1 KiB packages (one ``put`` each) into one PostgreSQL
  registry, against 1 writer; packages/s, and per writer the time waiting for the chain
  lock, holding it, and committing (measured on each connection). The test server runs
  with ``fsync=off`` (set on its command line), so commits are not durable-commit costs.
- **verify**: ``verify --all`` (the library call, and the CLI whole-process) against
  ``hashlib.sha256`` over the same blob files, by file size; MB/s and the ratio; BLAKE3
  over the same files (the one hash verify computes) and the CLI's start-up alongside.

PostgreSQL is the throw-away server of ``artifactstore_core.testing.servers``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import blake3
import sqlalchemy as sa
from _common import (
    MIB,
    RESULTS,
    Samples,
    header,
    library_cli,
    median,
    new_postgres_database,
    parser,
    profiled,
    result_row,
    rotated,
    run_command,
    settle,
    sqlite_url,
    table,
    temp_dir,
    temp_root,
    timed,
    verdict,
    write_results,
)

from artifactstore_core import ArtifactStore, PutRequest
from artifactstore_core.domain import events as ev
from artifactstore_core.domain.names import BUILTIN_KINDS
from artifactstore_core.eventlog import EventLog
from artifactstore_core.projections import ProjectionWriter, project
from artifactstore_core.seed import RETENTION_CLASS_SEEDS
from artifactstore_core.testing.servers import postgres_server

TARGET_MS = 50.0
CHAIN = 25
DEPTH = 20
NAMES = 10_000
RUN_SIZE = 4
APPEND_BATCH = 125  # events per append: about 100 packages at one time (a minute apart)
TRANSACTION = 20_000
KINDS = sorted(BUILTIN_KINDS)
CLASSES = {c["name"]: c["default_duration_seconds"] for c in RETENTION_CLASS_SEEDS}
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WRITERS = 8
WRITER_SIZE = 1024
MIN_TIMINGS = 5
SECTIONS = ("queries", "writers", "verify")


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# ---------------------------------------------------------------------------- registry
class Catalogue:
    """Packages of a busy registry as events, deterministic: package ``i`` is version
    ``i // NAMES + 1`` of name ``i % NAMES``; ids are kept for lineage and queries."""

    def __init__(self, seed: int = 3) -> None:
        self.rng = random.Random(seed)
        self.ids: list[str] = []
        self.blobs: list[dict[str, Any]] = []
        self.tagged: dict[str, str] = {}
        self.times: list[dt.datetime] = []

    @staticmethod
    def name(index: int) -> str:
        return f"team-{index % 100:02d}/dataset-{index // 100 % 100:02d}"

    def _package(self, index: int, at: dt.datetime) -> list[ev.Event]:
        rng = self.rng
        package_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        events: list[ev.Event] = []
        if self.blobs and rng.random() < 0.75:
            blob = rng.choice(self.blobs)
        else:
            blob = {
                "content_address": f"blake3:{rng.randbytes(32).hex()}",
                "digest_sha256": rng.randbytes(32).hex(),
                "size": rng.randrange(1, 10_000_000),
            }
            self.blobs.append(blob)
            events.append(ev.BlobStored(backend="hot", uri="file:///bench", **blob))
        inputs = [self.ids[index - 1]] if index % CHAIN else []
        if index and rng.random() < 0.1:
            inputs.append(self.ids[rng.randrange(index)])
        name, version = self.name(index), index // NAMES + 1
        retention = list(CLASSES)[index % len(CLASSES)]
        duration = CLASSES[retention]
        events.insert(0, ev.PackageRegistered(
            package_id=package_id, name=name, version=version, kind=KINDS[index % len(KINDS)],
            content_address=f"blake3:{rng.randbytes(32).hex()}",
            digest_sha256=rng.randbytes(32).hex(), size=blob["size"],
            files=[{"path": "part-0.parquet", **blob}],
            metadata={"rows": rng.randrange(10**6), "partition": version},
            provenance={"producer": "bench", "run_id": f"run-{index // RUN_SIZE}",
                        "inputs": list(dict.fromkeys(inputs))},
            retention_class=retention,
            expires_at=(at + dt.timedelta(seconds=duration)).isoformat() if duration else None,
        ))  # fmt: skip
        if version % 5 == 0:
            events.append(ev.TagMoved(
                package_id=package_id, name=name, tag="production",
                previous_package_id=self.tagged.get(name),
            ))  # fmt: skip
            self.tagged[name] = package_id
        self.ids.append(package_id)
        self.times.append(at)
        return events

    def extend(self, engine: sa.Engine, total: int) -> None:
        """Append packages until there are ``total``, 20,000 events per transaction."""
        log = EventLog()
        while len(self.ids) < total:
            with engine.begin() as conn:
                EventLog.lock_head(conn)
                writer = ProjectionWriter(conn)
                in_transaction = 0
                while in_transaction < TRANSACTION and len(self.ids) < total:
                    at = T0 + dt.timedelta(minutes=len(self.times))
                    batch: list[ev.Event] = []
                    while len(batch) < APPEND_BATCH and len(self.ids) < total:
                        batch += self._package(len(self.ids), at)
                    for recorded in log.append(conn, batch, actor="bench", at=at):
                        writer.add(project(recorded))
                    in_transaction += len(batch)
                writer.flush()


# ---------------------------------------------------------------------------- queries
Query = Callable[[ArtifactStore, random.Random], object]


def lineage_queries(catalogue: Catalogue) -> dict[str, Query]:
    """``lineage`` upstream from chain ends and downstream from chain starts, depth 20."""
    count = len(catalogue.ids)
    ends = list(range(CHAIN - 1, count, CHAIN))
    starts = list(range(0, count - CHAIN, CHAIN))
    ids = catalogue.ids
    return {
        f"lineage upstream, depth {DEPTH}": lambda s, r: s.lineage(ids[r.choice(ends)],
                                                                   depth=DEPTH),
        f"lineage downstream, depth {DEPTH}": lambda s, r: s.lineage(
            ids[r.choice(starts)], downstream=True, depth=DEPTH),
    }  # fmt: skip


def listing_queries(catalogue: Catalogue) -> dict[str, Query]:
    """``show`` by each kind of reference and ``ls`` with each filter (the CLI's calls)."""
    count, ids, times, name = len(catalogue.ids), catalogue.ids, catalogue.times, catalogue.name
    versions = max(1, count // NAMES)

    def index(r: random.Random) -> int:
        return r.randrange(count)

    def window(r: random.Random) -> dict[str, dt.datetime]:
        at = times[index(r)]  # one append batch: about 100 packages
        return {"created_after": at, "created_before": at + dt.timedelta(minutes=1)}

    return {
        "show ID": lambda s, r: s.describe(ids[index(r)]),
        "show NAME@VERSION": lambda s, r: s.describe(
            f"{name(i := index(r))}@{i // NAMES + 1}"),
        "show NAME (latest)": lambda s, r: s.describe(name(index(r))),
        f"ls NAME (all {versions} versions)": lambda s, r: s.list_packages(
            name_prefix=name(index(r))),
        "ls PREFIX --limit 100": lambda s, r: s.list_packages(
            name_prefix=f"team-{r.randrange(100):02d}/", limit=100),
        "ls --kind --limit 100": lambda s, r: s.list_packages(kind=r.choice(KINDS), limit=100),
        "ls --tag --limit 100": lambda s, r: s.list_packages(tag="production", limit=100),
        "ls PREFIX --tag": lambda s, r: s.list_packages(
            name_prefix=f"team-{r.randrange(100):02d}/dataset-{r.randrange(10)}",
            tag="production"),
        "ls --retention-class --status --limit 100": lambda s, r: s.list_packages(
            retention_class=r.choice(list(CLASSES)), status="active", limit=100),
        "ls --run-id": lambda s, r: s.list_packages(run_id=f"run-{index(r) // RUN_SIZE}"),
        "ls --created-after --created-before (~100 packages)": lambda s, r: s.list_packages(
            **window(r)),
    } | ({"show NAME:TAG": lambda s, r: s.describe(f"{name(r.randrange(NAMES))}:production")}
         if versions >= 5 else {})  # fmt: skip


def measure_queries(
    store: ArtifactStore, queries: dict[str, Query], repeats: int, budget: float, seed: int = 11
) -> Samples:
    """Milliseconds of each query, ``repeats`` times with varied arguments, interleaved
    (each round runs every query once, in rotating order), after one warm-up round. A
    query that has taken ``budget`` seconds in all is not repeated after its fifth timing
    (a query of seconds cannot be timed 200 times; its row says how many it has)."""
    rng, samples = random.Random(seed), Samples()
    items = list(queries.items())
    spent = dict.fromkeys(queries, 0.0)
    for round_index in range(repeats + 1):
        for label, query in rotated(items, round_index):
            if spent[label] > budget and len(samples.values.get(label, ())) >= MIN_TIMINGS:
                continue
            seconds, _ = timed(partial(query, store, rng))
            spent[label] += seconds
            if round_index:
                samples.add(label, seconds * 1000)
    return samples


@dataclass
class Database:
    """One registry database under test: a label and how to open it."""

    label: str
    url: str
    blobs: Path


def databases(root: Path, labels: set[str]) -> Iterator[Database]:
    """A fresh SQLite registry, then a fresh PostgreSQL one (those in ``labels``)."""
    if "SQLite" in labels:
        with temp_dir(root, "bench-scale-sqlite-") as path:
            yield Database("SQLite", sqlite_url(path / "registry.db"), path / "blobs")
    if "PostgreSQL" in labels:
        with postgres_server() as server, temp_dir(root, "bench-scale-pg-") as path:
            yield Database(
                "PostgreSQL", new_postgres_database(server.url(), "bench"), path / "blobs"
            )


def query_sections(
    database: Database, lineage_size: int, size: int, repeats: int, budget: float
) -> tuple[list[dict[str, Any]], list[tuple[str, bool]]]:
    """Build to ``lineage_size`` packages, time lineage, build on to ``size``, time
    ``ls``/``show``; rows and checks."""
    rows: list[dict[str, Any]] = []
    checks: list[tuple[str, bool]] = []
    catalogue = Catalogue()
    with ArtifactStore.open(database.url, str(database.blobs)) as store:
        for count, queries in ((lineage_size, lineage_queries), (size, listing_queries)):
            if count > len(catalogue.ids):
                seconds, _ = timed(partial(catalogue.extend, store.engine, count))
                print(f"{database.label}: {count:,} packages built in {seconds:.0f} s", flush=True)
                if database.label == "PostgreSQL":
                    # What autovacuum does to a registry that grew this big, done now:
                    # the planner's row estimates come from these statistics.
                    with store.engine.begin() as conn:
                        conn.exec_driver_sql("ANALYZE")
                settle()
            scenario = f"{count:,} packages, {database.label}"
            samples = measure_queries(store, queries(catalogue), repeats, budget)
            for label, values in samples.values.items():
                p99 = percentile(values, 0.99)
                rows.append(
                    result_row(
                        scenario,
                        label,
                        "ms",
                        values,
                        p50=median(values),
                        p99=p99,
                        packages=count,
                        target=TARGET_MS,
                        timings=len(values),
                        database=database.label,
                    )
                )
                checks.append((f"{database.label}, {count:,} packages: {label} p99 "
                               f"{p99:.1f} ms < {TARGET_MS:.0f} ms", p99 < TARGET_MS))  # fmt: skip
            table(
                [f"{scenario}", "p50 ms", "p99 ms", "max ms"],
                [[label, median(v), percentile(v, 0.99), max(v)] for label, v in
                 samples.values.items()],
            )  # fmt: skip
    return rows, checks


# ---------------------------------------------------------------------------- writers
@dataclass
class WriterTimes:
    """What one writer's connection spent, in seconds (``perf_counter``)."""

    lock_wait: float = 0.0
    lock_held: float = 0.0
    commit: float = 0.0
    #: Waits for the server while holding the lock: statements sent alone, pipelines of
    #: statements sent together, and the commit.
    waits: int = 0
    #: When the lock statement returned in the current transaction (None: not held).
    locked_at: float | None = None
    #: Whether the last statement under the lock went out in a pipeline.
    in_pipeline: bool = False


def instrument(engine: sa.Engine) -> WriterTimes:
    """Time the chain lock statement (``pg_advisory_xact_lock``), the commit, and the
    span from holding the lock to the end of the commit, on ``engine``'s connections."""
    times = WriterTimes()
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "pg_advisory_xact_lock" in statement:
            started[id(cursor)] = time.perf_counter()
        elif times.locked_at is not None:
            pipelined = bool(cursor.connection.pgconn.pipeline_status)
            times.waits += not (pipelined and times.in_pipeline)
            times.in_pipeline = pipelined

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "pg_advisory_xact_lock" in statement:
            now = time.perf_counter()
            times.lock_wait += now - started.pop(id(cursor))
            times.locked_at = now

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    dialect_commit = engine.dialect.do_commit

    def do_commit(dbapi_connection: Any) -> None:
        start = time.perf_counter()
        dialect_commit(dbapi_connection)
        end = time.perf_counter()
        times.commit += end - start
        if times.locked_at is not None:
            times.lock_held += end - times.locked_at
            times.waits += 1
            times.locked_at, times.in_pipeline = None, False

    engine.dialect.do_commit = do_commit  # type: ignore[method-assign]
    return times


def writer(url: str, blobs: str, index: int, count: int, start: Any, out: Any) -> None:
    """Put ``count`` 1 KiB packages, one call each, once ``start`` is set; send the
    timings (wall, lock wait, lock held, commit) to ``out``."""
    rng = random.Random(index)
    with ArtifactStore.open(url, blobs) as store:
        store.put(f"bench/warm-{index}", {"part.bin": rng.randbytes(WRITER_SIZE)})
        times = instrument(store.engine)
        contents = [rng.randbytes(WRITER_SIZE) for _ in range(count)]
        start.wait()
        begin = time.perf_counter()
        for number, content in enumerate(contents):
            store.put(f"bench/writer-{index}-{number % 50}", {"part.bin": content})
        wall = time.perf_counter() - begin
    out.send((wall, times.lock_wait, times.lock_held, times.commit, times.waits / count))


def run_writers(url: str, blobs: Path, writers: int, count: int) -> dict[str, float]:
    """``writers`` processes putting ``count`` packages each, started together."""
    context = multiprocessing.get_context("fork")
    start = context.Event()
    pipes = [context.Pipe(duplex=False) for _ in range(writers)]
    processes = [
        context.Process(target=writer, args=(url, str(blobs), i, count, start, pipes[i][1]))
        for i in range(writers)
    ]
    for process in processes:
        process.start()
    time.sleep(3 + writers)  # let each open its store and warm up before the start
    begin = time.perf_counter()
    start.set()
    reports = [receive.recv() for receive, _ in pipes]
    wall = time.perf_counter() - begin
    for process in processes:
        process.join()
        if process.exitcode:
            raise RuntimeError(f"writer process failed with exit code {process.exitcode}")
    busy = sum(r[0] for r in reports)
    return {
        "packages_per_s": writers * count / wall,
        "lock_wait_share": sum(r[1] for r in reports) / busy,
        "lock_held_share": sum(r[2] for r in reports) / busy,
        "commit_share": sum(r[3] for r in reports) / busy,
        # The lock is held by one writer at a time: its total over the wall time says
        # how close the chain lock is to being the bound (1.0 = always held).
        "lock_utilisation": sum(r[2] for r in reports) / wall,
        "commit_ms": 1000 * sum(r[3] for r in reports) / (writers * count),
        "waits_under_lock": median([r[4] for r in reports]),
    }


def writers_section(
    root: Path, count: int, runs: int, profile: bool = False
) -> tuple[list[dict[str, Any]], list[tuple[str, bool]]]:
    """1 and 8 writers, interleaved rounds, each on a fresh database of one server; with
    ``profile``, ``count`` puts of one writer once more under cProfile (this process)."""
    rows: list[dict[str, Any]] = []
    samples: dict[int, list[dict[str, float]]] = {}
    with postgres_server() as server:
        for run in range(runs):
            for writers in rotated([1, WRITERS], run):
                with temp_dir(root, "bench-scale-writers-") as path:
                    url = new_postgres_database(server.url(), f"writers_{writers}_{run}")
                    with ArtifactStore.open(url, str(path)):
                        pass  # schema and seeds, not timed
                    result = run_writers(url, path, writers, count)
                samples.setdefault(writers, []).append(result)
                print(f"run {run + 1}/{runs}, {writers} writer(s): "
                      f"{result['packages_per_s']:,.0f} packages/s, chain lock held "
                      f"{result['lock_utilisation']:.0%} of the time", flush=True)  # fmt: skip
                settle()
        if profile:
            with temp_dir(root, "bench-scale-writers-") as path:
                url = new_postgres_database(server.url(), "writers_profile")
                with ArtifactStore.open(url, str(path)) as store:
                    profiled(lambda: [store.put(f"bench/p-{i % 50}", {"part.bin": os.urandom(
                        WRITER_SIZE)}) for i in range(count)])  # fmt: skip
    one = [r["packages_per_s"] for r in samples[1]]
    for writers, results in samples.items():
        rates = [r["packages_per_s"] for r in results]
        shares = {k: median([r[k] for r in results]) for k in results[0] if k != "packages_per_s"}
        rows.append(result_row(
            "concurrent writers, PostgreSQL (fsync=off)", f"{writers} writer(s)", "packages/s",
            rates, ratio_to="1 writer(s)" if writers > 1 else None,
            ratios=[a / b for a, b in zip(rates, one, strict=True)], writers=writers, **shares,
        ))  # fmt: skip
    table(
        ["PostgreSQL (fsync=off)", "packages/s", "min-max", "x 1 writer", "lock wait",
         "lock held", "commit", "lock busy", "commit ms", "waits/put"],
        [[r["tool"], r["median"], f"{r['min']:,.0f}-{r['max']:,.0f}", r.get("ratio", 1.0),
          f"{r['lock_wait_share']:.0%}", f"{r['lock_held_share']:.0%}",
          f"{r['commit_share']:.0%}", f"{r['lock_utilisation']:.0%}", r["commit_ms"],
          r["waits_under_lock"]]
         for r in rows],
    )  # fmt: skip
    print("lock wait / lock held / commit: shares of the writers' own time (commit is part of "
          "the held time); lock busy: the chain lock's held time over the wall time (near "
          "100%: the lock is the bound); waits/put: how often a writer waits for the server "
          "while holding the lock (statements sent alone, pipelines, the commit). The server "
          "runs with fsync=off: a durable commit costs more, and it is taken under the "
          "lock.\n")  # fmt: skip
    return rows, []


# ---------------------------------------------------------------------------- verify
VERIFY_BASE = "hashlib.sha256"
VERIFY_HASH = "blake3, one thread (the hash verify checks)"
VERIFY_CLI = "verify --all (CLI)"


def verify_section(
    root: Path, sets: list[tuple[int, int]], runs: int, profile: bool = False
) -> tuple[list[dict[str, Any]], list[tuple[str, bool]]]:
    """For each (file size, count): a registry of ``count`` one-file packages; then rounds
    of sha256 and BLAKE3 over the blob files, the library ``verify`` and ``verify --all``
    (CLI, whose start-up is timed in the same rounds); with ``profile``, the library
    ``verify`` of the first set once more under cProfile."""
    rows: list[dict[str, Any]] = []
    cli = library_cli()
    for size, count in sets:
        with temp_dir(root, "bench-scale-verify-") as path:
            url, blobs = sqlite_url(path / "r.db"), path / "blobs"
            with ArtifactStore.open(url, str(blobs)) as store:
                for first in range(0, count, 100):
                    store.put_many(
                        PutRequest(f"bench/v-{i}", {"f.bin": io.BytesIO(os.urandom(size))})
                        for i in range(first, min(count, first + 100))
                    )
                files = [p for p in blobs.rglob("*") if p.is_file() and p.stat().st_size == size]
                assert len(files) == count, (len(files), count)
                env = {"ARTIFACTSTORE_DATABASE_URL": url, "ARTIFACTSTORE_STORAGE_URL": str(blobs)}
                steps: dict[str, Callable[[], float]] = {
                    VERIFY_BASE: partial(hash_files, hashlib.sha256, files),
                    VERIFY_HASH: partial(hash_files, blake3.blake3, files),
                    "ArtifactStore.verify() (library)": partial(verify_library, store),
                    VERIFY_CLI: partial(run_command, [*cli, "verify", "--all"], **env),
                    "start-up": partial(run_command, [*cli, "--version"]),
                }
                samples = Samples()
                hash_files(hashlib.sha256, files)  # page cache warm for every step
                for run in range(runs):
                    for label, step in rotated(list(steps.items()), run):
                        samples.add(label, step())
                if profile and (size, count) == sets[0]:
                    profiled(store.verify)
            total = size * count
            scenario = f"verify --all, {count:,} files of {_size(size)}"
            base = samples.values[VERIFY_BASE]
            startup = samples.values.pop("start-up")
            start = len(rows)
            for label, seconds in samples.values.items():
                extra = {"startup_s": median(startup)} if label == VERIFY_CLI else {}
                rows.append(result_row(
                    scenario, label, "MB/s", [total / s / 1e6 for s in seconds],
                    ratio_to=VERIFY_BASE if label != VERIFY_BASE else None,
                    ratios=[b / s for s, b in zip(seconds, base, strict=True)], size=size,
                    files=count, bytes=total, **extra,
                ))  # fmt: skip
            table(
                [scenario, "median MB/s", "min-max MB/s", "rate x sha256"],
                [[r["tool"], r["median"], f"{r['min']:,.0f}-{r['max']:,.0f}",
                  r.get("ratio", "-")] for r in rows[start:]],
            )  # fmt: skip
            print(f"CLI start-up (--version, same rounds): {median(startup):.2f} s median\n")
    return rows, []


def _size(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // 1024} KiB"


def hash_files(new: Callable[[], Any], files: list[Path]) -> float:
    """Seconds to hash each file with a fresh ``new()`` hasher, read 1 MiB at a time."""
    start = time.perf_counter()
    for path in files:
        digest = new()
        with open(path, "rb", buffering=0) as stream:
            while chunk := stream.read(MIB):
                digest.update(chunk)
    return time.perf_counter() - start


def verify_library(store: ArtifactStore) -> float:
    seconds, result = timed(lambda: store.verify(rehash=True))
    assert result.ok, result.problems
    return seconds


# ---------------------------------------------------------------------------- main
def save_results(
    rows: list[dict[str, Any]],
    checks: list[tuple[str, bool]],
    sections: set[str],
    quick: bool,
    labels: set[str],
) -> None:
    """Write the results file with ``rows``, keeping the rows of sections not run now
    from the file's last run of the same kind (quick or full), and the queries rows and
    checks of databases not measured now (the checks come from the queries section)."""
    path = RESULTS / "bench_scale.json"
    kept: list[dict[str, Any]] = []
    if path.exists():
        last = json.loads(path.read_text())
        if last.get("quick") == quick:
            measured = labels if "queries" in sections else set()
            kept = [
                row
                for row in last["rows"]
                if row.get("section") not in sections
                or (row.get("section") == "queries" and row.get("database") not in measured)
            ]
            checks = [
                (c["target"], c["ok"])
                for c in last["checks"]
                if c["target"].split(",", 1)[0] not in measured
            ] + checks
    write_results("bench_scale", kept + rows, checks, quick)


def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--packages", type=int, help="ls/show registry size (default 1,000,000)")
    args.add_argument("--lineage-packages", type=int, help="lineage registry (default 100,000)")
    args.add_argument("--repeats", type=int, help="timings per query (default 200)")
    args.add_argument("--runs", type=int, help="rounds of writers and verify (default 3)")
    args.add_argument("--writer-puts", type=int, help="puts per writer (default 300)")
    args.add_argument("--no-postgres", action="store_true", help="SQLite only, no writers")
    args.add_argument(
        "--databases",
        default="sqlite,postgresql",
        help="comma-separated: the queries section's databases (default: sqlite,postgresql); "
        "the results file keeps the other database's rows from its last run",
    )
    args.add_argument(
        "--section",
        default=",".join(SECTIONS),
        help="comma-separated: queries (lineage + ls/show), writers, verify (default: all); "
        "the results file keeps the other sections' rows from its last run",
    )
    args.add_argument(
        "--budget",
        type=float,
        help="seconds per query before it stops being "
        "repeated (after 5 timings; default 20, quick 5)",
    )
    args.add_argument(
        "--postgres-packages",
        type=int,
        help="ls/show registry size on PostgreSQL (default: --packages)",
    )
    options = args.parse_args()
    quick = options.quick
    size = options.packages or (20_000 if quick else 1_000_000)
    lineage_size = min(size, options.lineage_packages or (10_000 if quick else 100_000))
    repeats = options.repeats or (30 if quick else 200)
    runs = options.runs or (2 if quick else 3)
    writer_puts = options.writer_puts or (30 if quick else 300)
    verify_sets = (
        [(1024, 1000), (MIB, 32), (16 * MIB, 4)] if quick
        else [(1024, 10_000), (MIB, 256), (64 * MIB, 8)]
    )  # fmt: skip
    root = temp_root(options.tmpdir)
    sections = set(options.section.split(","))
    if not sections <= set(SECTIONS):
        args.error(f"--section: unknown {sorted(sections - set(SECTIONS))}")
    budget = options.budget or (5.0 if quick else 20.0)
    postgres_size = options.postgres_packages or size
    labels = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    chosen = set(options.databases.split(","))
    if not chosen <= set(labels):
        args.error(f"--databases: unknown {sorted(chosen - set(labels))}")
    measured = {labels[name] for name in chosen} - (
        {"PostgreSQL"} if options.no_postgres else set()
    )
    header(
        "scale: lineage, ls/show, concurrent writers, verify --all",
        quick,
        lineage=f"depth {DEPTH} over {lineage_size:,} packages, {repeats} queries each",
        queries=f"ls/show at {size:,} packages, {repeats} of each, library calls, warm",
        writers=f"1 and {WRITERS} processes x {writer_puts} puts of {WRITER_SIZE} B, "
        f"PostgreSQL, {runs} rounds"
        if not options.no_postgres else "skipped (--no-postgres)",
        verify=", ".join(f"{n:,} x {_size(s)}" for s, n in verify_sets) + f", {runs} rounds",
        postgres="throw-away server from postgres_server() (fsync=off)",
        temp=str(root),
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    checks: list[tuple[str, bool]] = []

    def save(section: str, new_rows: list[dict[str, Any]]) -> None:
        # After each section, so a run cut short keeps what it measured.
        rows.extend(row | {"section": section} for row in new_rows)
        save_results(rows, checks, sections, quick, measured)

    if "writers" in sections and not options.no_postgres:
        save("writers", writers_section(root, writer_puts, runs, options.profile)[0])
    if "verify" in sections:
        save("verify", verify_section(root, verify_sets, runs, options.profile)[0])
    if "queries" in sections:
        for database in databases(root, measured):
            count = postgres_size if database.label == "PostgreSQL" else size
            more_rows, more_checks = query_sections(
                database, min(lineage_size, count), count, repeats, budget
            )
            checks += more_checks
            save("queries", more_rows)
    return verdict(checks, quick)


if __name__ == "__main__":
    raise SystemExit(main())

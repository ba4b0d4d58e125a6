"""``rebuild_views`` of a large event log on SQLite.

The log is generated, not put: commands like real usage (puts of 1-3 files with mostly new
blobs and some shared ones, some with lineage inputs; tag moves; retrievals) become
``PackageRegistered``, ``BlobStored``, ``TagMoved`` and ``PackageRetrieved`` events,
appended through ``EventLog.append`` in batches of a few hundred events (one time and
actor per batch) and projected with ``project`` + ``ProjectionWriter`` in the same
transaction, as ``Ledger.record`` does. Then, in interleaved rounds: the full
``rebuild_views``, and as context reading (and decoding) the log alone, and reading plus
projecting without writing rows.

Target: median rebuild rate >= 20,000 events/second on a 1,000,000-event log. Afterwards
``check_views`` must report no differences on a 50,000-event log (before and after its
rebuild), and the 1M log's view row counts must be the same after the rebuild as before.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import (
    Samples,
    header,
    parser,
    peak_rss_mib,
    profiled,
    rotated,
    sample_rows,
    settle,
    sqlite_url,
    table,
    temp_dir,
    temp_root,
    timed,
    verdict,
    write_results,
)

from artifactstore_core.domain import events as ev
from artifactstore_core.domain.names import BUILTIN_KINDS
from artifactstore_core.eventlog import EventLog
from artifactstore_core.projections import ProjectionWriter, project, rebuild_views
from artifactstore_core.schema import PROJECTION_TABLES
from artifactstore_core.seed import RETENTION_CLASS_SEEDS
from artifactstore_core.store import ArtifactStore

TARGET = 20_000.0
CHECK_EVENTS = 50_000
APPEND_BATCH = 500  # events per EventLog.append call (one created_at and actor each)
TRANSACTION = 20_000  # events per transaction while building
KINDS = sorted(BUILTIN_KINDS)
TAGS = ("production", "staging", "candidate", "reviewed")
ACTORS = ("dagster", "ci", "alice", "bob", "retention-sweeper")
CLASSES = {c["name"]: c["default_duration_seconds"] for c in RETENTION_CLASS_SEEDS}


class LogGenerator:
    """Commands of a busy registry turned into events, deterministic for a seed."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.clock = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        self.names = [f"team-{t}/dataset-{d}" for t in range(40) for d in range(500)]
        self.versions: dict[str, int] = {}
        self.packages: list[tuple[str, str]] = []  # (package_id, name)
        self.blobs: list[dict[str, Any]] = []  # file entries without a path
        self.tags: dict[tuple[str, str], str] = {}

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _hex(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def _put(self, now: dt.datetime) -> list[ev.Event]:
        rng, events = self.rng, []
        files, stored = [], []
        for index in range(rng.choice((1, 1, 2, 3))):
            if self.blobs and rng.random() < 0.15:  # the same bytes as an earlier file
                blob = rng.choice(self.blobs)
            else:
                blob = {
                    "content_address": f"blake3:{self._hex()}",
                    "digest_sha256": self._hex(),
                    "size": rng.randrange(1, 50_000_000),
                }
                self.blobs.append(blob)
                stored.append(blob)
            files.append({"path": f"part-{index}.parquet", **blob})
        name = rng.choice(self.names)
        version = self.versions[name] = self.versions.get(name, 0) + 1
        inputs = []
        if self.packages and rng.random() < 0.2:
            inputs = [rng.choice(self.packages)[0] for _ in range(rng.choice((1, 2)))]
        retention = rng.choice(list(CLASSES))
        duration = CLASSES[retention]
        package_id = self._id()
        events.append(
            ev.PackageRegistered(
                package_id=package_id,
                name=name,
                version=version,
                kind=rng.choice(KINDS),
                content_address=f"blake3:{self._hex()}",
                digest_sha256=self._hex(),
                size=sum(f["size"] for f in files),
                files=files,
                metadata={"rows": rng.randrange(10**6), "source": "bench", "partition": version},
                provenance={
                    "producer": "dagster",
                    "run_id": self._id(),
                    "code_version": f"{rng.randrange(100)}.0",
                    "actor": "dagster",
                    "inputs": list(dict.fromkeys(inputs)),
                    "attributes": {"asset": name},
                },
                retention_class=retention,
                expires_at=(now + dt.timedelta(seconds=duration)).isoformat() if duration else None,
            )
        )
        events.extend(
            ev.BlobStored(
                content_address=blob["content_address"],
                backend="hot",
                digest_sha256=blob["digest_sha256"],
                size=blob["size"],
                uri=f"file:///srv/blobs/{blob['content_address'].replace(':', '/')}",
            )
            for blob in stored
        )
        self.packages.append((package_id, name))
        return events

    def _tag(self) -> ev.Event:
        package_id, name = self.rng.choice(self.packages)
        tag = self.rng.choice(TAGS)
        previous = self.tags.get((name, tag))
        self.tags[name, tag] = package_id
        return ev.TagMoved(package_id=package_id, name=name, tag=tag, previous_package_id=previous)

    def _get(self) -> ev.Event:
        package_id, _ = self.rng.choice(self.packages)
        return ev.PackageRetrieved(
            package_id=package_id,
            purpose=self.rng.choice(("dagster-run", "export", "review", None)),
            run_id=self._id() if self.rng.random() < 0.7 else None,
            path=self.rng.choice(("part-0.parquet", None)),
        )

    def batch(self, size: int) -> tuple[dt.datetime, str, list[ev.Event]]:
        """About ``size`` events of commands that happened around one moment, by one actor."""
        self.clock += dt.timedelta(seconds=self.rng.randrange(1, 120))
        events: list[ev.Event] = []
        while len(events) < size:
            roll = self.rng.random()
            if not self.packages or roll < 0.40:
                events.extend(self._put(self.clock))
            elif roll < 0.85:
                events.append(self._get())
            else:
                events.append(self._tag())
        return self.clock, self.rng.choice(ACTORS), events


def build_log(engine: sa.Engine, total: int, seed: int = 1) -> dict[str, int]:
    """Append about ``total`` events with their projections; the number of events by type."""
    generator, log, counts = LogGenerator(seed), EventLog(), dict[str, int]()
    written = 0
    while written < total:
        with engine.begin() as conn:
            writer = ProjectionWriter(conn)
            in_transaction = 0
            while in_transaction < TRANSACTION and written < total:
                at, actor, events = generator.batch(min(APPEND_BATCH, total - written))
                for recorded in log.append(conn, events, actor=actor, at=at):
                    writer.add(project(recorded))
                    counts[recorded.event.event_type] = counts.get(recorded.event.event_type, 0) + 1
                in_transaction += len(events)
                written += len(events)
            writer.flush()
    return counts


def row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
            for t in PROJECTION_TABLES
        }


def read_only(engine: sa.Engine) -> int:
    """Read and decode every event (what a rebuild does before projecting)."""
    with engine.connect() as conn:
        return sum(1 for _ in EventLog().read(conn))


def read_and_project(engine: sa.Engine) -> int:
    """Read, decode and project every event, without writing rows."""
    count = 0
    with engine.connect() as conn:
        for recorded in EventLog().read(conn):
            project(recorded)
            count += 1
    return count


def open_registry(path: Path) -> ArtifactStore:
    return ArtifactStore.open(sqlite_url(path / "registry.db"), str(path / "blobs"))


def build(path: Path, total: int) -> tuple[ArtifactStore, int]:
    path.mkdir()
    store = open_registry(path)
    seconds, counts = timed(lambda: build_log(store.engine, total))
    generated = sum(counts.values())
    mix = ", ".join(f"{k} {v / generated:.0%}" for k, v in sorted(counts.items()))
    rate = generated / seconds
    print(f"built a log of {generated:,} events in {seconds:.0f} s ({rate:,.0f}/s): {mix}")
    with store.engine.connect() as conn:  # with the class definitions recorded at open
        return store, store.log.head(conn)


def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--events", type=int, help="log size (default 1,000,000; quick 50,000)")
    args.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 2)")
    options = args.parse_args()
    quick = options.quick
    total = options.events or (CHECK_EVENTS if quick else 1_000_000)
    rounds = options.rounds or (2 if quick else 3)
    root = temp_root(options.tmpdir)
    header(
        "rebuild_views of a generated event log (SQLite)",
        quick,
        log=f"{total:,} events, appended in batches of {APPEND_BATCH} "
        f"({TRANSACTION:,} per transaction) with live projections",
        rounds=f"{rounds}: rebuild_views, read alone, read + project; rotating order",
        temp=str(root),
    )
    samples = Samples()
    checks: list[tuple[str, bool]] = []
    with temp_dir(root, "bench-rebuild-") as work:
        store, events = build(work / "main", total)
        before = row_counts(store.engine)
        steps: dict[str, Callable[[], int]] = {
            "rebuild_views": partial(rebuild_views, store.engine),
            "read + decode only": partial(read_only, store.engine),
            "read + decode + project, no writes": partial(read_and_project, store.engine),
        }
        for index in range(rounds):
            for name, step in rotated(list(steps.items()), index):
                seconds, replayed = timed(step)
                assert replayed == events, (name, replayed, events)
                samples.add(name, events / seconds)
                print(f"round {index + 1}/{rounds}: {name}: {events / seconds:,.0f} events/s")
                settle()
        print()
        after = row_counts(store.engine)
        print("view rows:", ", ".join(f"{k} {v:,}" for k, v in after.items()))
        print(f"peak RSS of this process: {peak_rss_mib():.0f} MiB")
        print()
        table(
            ["step (whole log)", "median events/s", "min-max", "s per 1M events"],
            [
                [name, samples.median(name), samples.spread(name), 1e6 / samples.median(name)]
                for name in steps
            ],
        )
        store.close()
        checks.append(("view row counts equal before and after the rebuild", before == after))

        if total == CHECK_EVENTS:
            small = open_registry(work / "main")
        else:
            small, _ = build(work / "check", CHECK_EVENTS)
        live = small.check_views()
        small.rebuild_views()
        rebuilt = small.check_views()
        for label, differences in (("live views", live), ("after rebuild", rebuilt)):
            for difference in differences[:5]:
                print(f"  difference ({label}): {difference}")
            checks.append(
                (f"check_views on {CHECK_EVENTS:,} events, {label}: {len(differences)} differences",
                 not differences)
            )  # fmt: skip
        if options.profile:
            profiled(small.rebuild_views)
        small.close()

    rate = samples.median("rebuild_views")
    checks.insert(0, (f"rebuild {rate:,.0f} events/s >= {TARGET:,.0f}/s", rate >= TARGET))
    rows = sample_rows(f"{events:,} events, SQLite", samples, "events/s", target=TARGET)
    write_results("bench_rebuild", rows, checks, quick)
    return verdict(checks, quick)


if __name__ == "__main__":
    raise SystemExit(main())

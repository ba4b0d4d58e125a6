"""Many small files: 1 KiB single-file packages (put in batches and one by one), and one
package of a directory of 10,000 files of 1 KiB against `dvc add`.

Each run puts N packages (default 10,000; distinct random content, 1,000 names with ten
versions each) into a fresh registry with a fresh local blob store (fsync'd, the default)
and reports packages per second: with ``put_many`` in batches of 100 (one transaction per
batch, blob fsyncs overlapping on threads) and with one ``put`` call per package (one
transaction and one fsync'd blob write after another), on SQLite and on PostgreSQL (the
throw-away server of ``artifactstore_core.testing.servers``, which runs with
``fsync=off``). Context row in the same rounds: the blob writes alone
(``LocalBlobStore.write`` of the same bytes, one after another).

Target: median SQLite packages/second >= 500 with ``put_many``; one-call-per-package
rates are reported beside it (PostgreSQL: reported, no target).

Directory section: a directory of 10,000 files of 1 KiB (random bytes) is put as ONE
package into a fresh SQLite registry and local store (fsync on), with the ``artifactstore
put`` command (whole-process wall time, start-up included) and with a library call; then
the same directory again, unchanged (all blobs stored: the daily no-op). DVC, installed
into a throw-away virtualenv under the temp dir, runs in the same rounds, interleaved:
``dvc add`` of a copy of the directory in a new project, ``dvc add`` again, ``dvc status``.
Targets: CLI put <= 1.0x ``dvc add``; CLI put again faster than ``dvc add`` again and than
``dvc status``. Without DVC (it could not be installed, or ``--no-dvc``) the DVC rows are
skipped with the reason and there is no ratio target.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    Samples,
    header,
    library_cli,
    median,
    new_postgres_database,
    parser,
    profiled,
    rotated,
    run_command,
    sample_rows,
    settle,
    sqlite_url,
    table,
    temp_dir,
    temp_root,
    throwaway_tool,
    timed,
    verdict,
    write_results,
)

from artifactstore_core import ArtifactStore, PutRequest
from artifactstore_core.config import load_settings
from artifactstore_core.storage.local import LocalBlobStore
from artifactstore_core.testing.servers import postgres_server

TARGET = 500.0
SIZE = 1024
NAMES = 1000
WARM_UP = 10
BATCH = 100
SQLITE_MANY = f"put_many (batches of {BATCH}), SQLite + local store"
SQLITE = "put (one call each), SQLite + local store"
POSTGRES_MANY = f"put_many (batches of {BATCH}), PostgreSQL (fsync=off)"
POSTGRES = "put (one call each), PostgreSQL (fsync=off)"
BLOBS = "blob writes alone (LocalBlobStore, fsync)"
DIR_FILES = 10_000
CLI_PUT = "artifactstore put DIR (CLI)"
CLI_AGAIN = "artifactstore put DIR again, unchanged (CLI)"
LIB_PUT = "ArtifactStore.put(DIR) (library call)"
LIB_AGAIN = "ArtifactStore.put(DIR) again (library call)"
DVC_ADD = "dvc add DIR"
DVC_AGAIN = "dvc add DIR again, unchanged"
DVC_STATUS = "dvc status, unchanged"
DVC_ENV = {"DVC_NO_ANALYTICS": "1"}


def put_all(store: ArtifactStore, contents: Sequence[bytes]) -> None:
    for index, content in enumerate(contents):
        store.put(f"bench/small-{index % NAMES}", {"part.bin": content})


def put_batches(store: ArtifactStore, contents: Sequence[bytes]) -> None:
    for start in range(0, len(contents), BATCH):
        store.put_many(
            PutRequest(f"bench/small-{index % NAMES}", {"part.bin": contents[index]})
            for index in range(start, min(start + BATCH, len(contents)))
        )


Putter = Callable[[ArtifactStore, Sequence[bytes]], None]


def timed_puts(put: Putter, database_url: str, storage: Path, contents: Sequence[bytes]) -> float:
    """Seconds for putting ``contents`` into a fresh registry (schema creation not timed)."""
    with ArtifactStore.open(database_url, str(storage)) as store:
        put_all(store, [os.urandom(SIZE) for _ in range(WARM_UP)])
        seconds, _ = timed(lambda: put(store, contents))
    return seconds


def timed_blob_writes(storage: Path, contents: Sequence[bytes]) -> float:
    blobs = LocalBlobStore(storage)

    def write_all() -> None:
        for content in contents:
            blobs.write(io.BytesIO(content))

    return timed(write_all)[0]


@contextlib.contextmanager
def maybe_postgres(skip: bool) -> Iterator[str | None]:
    """The admin URL of a throw-away PostgreSQL server for the block (None when skipped)."""
    if skip:
        yield None
        return
    with postgres_server() as server:
        yield server.url()


def make_tree(directory: Path, files: int) -> None:
    directory.mkdir()
    for index in range(files):
        (directory / f"f{index:05d}.bin").write_bytes(os.urandom(SIZE))


def cli_puts(
    where: Path, data: Path, command: Sequence[str], labels: tuple[str, str] = (CLI_PUT, CLI_AGAIN)
) -> dict[str, float]:
    """The put ``command`` on a fresh registry (``migrate`` not timed), then again."""
    where.mkdir()
    env = {
        "ARTIFACTSTORE_DATABASE_URL": sqlite_url(where / "r.db"),
        "ARTIFACTSTORE_STORAGE_URL": str(where / "blobs"),
    }
    run_command([*command, "migrate"], **env)
    settle()
    put = [*command, "put", "bench/dir", str(data)]
    first = run_command(put, **env)
    settle()
    return {labels[0]: first, labels[1]: run_command(put, **env)}


def library_puts(where: Path, data: Path) -> dict[str, float]:
    """``ArtifactStore.put`` of the directory on a fresh registry, then again."""
    where.mkdir()
    with ArtifactStore.open(sqlite_url(where / "r.db"), str(where / "blobs")) as store:
        settle()
        first, _ = timed(lambda: store.put("bench/dir", data))
        settle()
        again, _ = timed(lambda: store.put("bench/dir", data))
    return {LIB_PUT: first, LIB_AGAIN: again}


def dvc_adds(dvc: Path, project: Path, data: Path) -> dict[str, float]:
    """``dvc add`` of a copy of the directory in a new project, again, and ``dvc status``."""
    project.mkdir()
    shutil.copytree(data, project / "data")
    run_command([str(dvc), "init", "--no-scm", "-q"], cwd=project, **DVC_ENV)
    settle()
    add = [str(dvc), "add", "-q", "data"]
    first = run_command(add, cwd=project, **DVC_ENV)
    settle()
    again = run_command(add, cwd=project, **DVC_ENV)
    status = run_command([str(dvc), "status", "-q"], cwd=project, **DVC_ENV)
    return {DVC_ADD: first, DVC_AGAIN: again, DVC_STATUS: status}


def directory_section(
    work: Path, files: int, runs: int, with_dvc: bool, baseline: Path | None, rows: list[Any]
) -> list[tuple[str, bool]]:
    """The directory scenario; its target checks (none without DVC); its results are
    added to ``rows``. ``baseline``: another checkout whose put command runs in the same
    rounds (before/after figures)."""
    dvc, why = throwaway_tool(work, "dvc", "dvc") if with_dvc else (None, "--no-dvc given")
    print(f"DVC: {dvc_version(dvc) if dvc else 'SKIPPED, ' + why}", flush=True)
    data = work / "tree"
    make_tree(data, files)
    samples = Samples()
    for run in range(runs):
        steps: list[tuple[str, Callable[[], dict[str, float]]]] = [
            ("cli", partial(cli_puts, work / f"cli-{run}", data, library_cli())),
            ("library", partial(library_puts, work / f"lib-{run}", data)),
        ]
        if baseline is not None:
            labels = (f"{CLI_PUT}, {baseline}", f"{CLI_AGAIN}, {baseline}")
            command = library_cli(baseline)
            steps.append(("base", partial(cli_puts, work / f"base-{run}", data, command, labels)))
        if dvc is not None:
            steps.append(("dvc", partial(dvc_adds, dvc, work / f"dvc-{run}", data)))
        for _, step in rotated(steps, run):
            for name, seconds in step().items():
                samples.add(name, seconds)
                print(f"run {run + 1}/{runs}: {name}: {seconds:.2f} s", flush=True)
            settle()
    print()

    def ratio(name: str, baseline: str = DVC_ADD) -> float:
        """Median over the rounds of ``name`` / ``baseline`` measured in the same round."""
        pairs = zip(samples.values[name], samples.values[baseline], strict=True)
        return median([value / reference for value, reference in pairs])

    table(
        ["what", "median s", "min-max s", "x dvc add (median of rounds)"],
        [
            [name, samples.median(name), samples.spread(name), ratio(name) if dvc else "-"]
            for name in samples.values
        ],
    )
    scenario = f"one package of {files:,} files of {SIZE} B"
    rows += [
        row | {"headline": row["tool"] == CLI_PUT}
        for row in sample_rows(scenario, samples, "s", baseline=DVC_ADD if dvc else None)
    ]
    if dvc is None:
        return []
    put = ratio(CLI_PUT)
    no_op = ratio(CLI_AGAIN, DVC_AGAIN)
    no_op_status = ratio(CLI_AGAIN, DVC_STATUS)
    print(f"no-op: CLI put again is {no_op:.2f}x dvc add again, {no_op_status:.2f}x dvc status")
    return [
        (f"CLI put of {files:,} files {put:.2f}x dvc add <= 1.0", put <= 1.0),
        (f"CLI put again {no_op:.2f}x dvc add again < 1.0", no_op < 1.0),
        (f"CLI put again {no_op_status:.2f}x dvc status < 1.0", no_op_status < 1.0),
    ]  # fmt: skip


def dvc_version(dvc: Path) -> str:
    done = subprocess.run([str(dvc), "--version"], capture_output=True, text=True, check=False)
    return f"dvc {done.stdout.strip()} (throw-away virtualenv {dvc.parent.parent})"


def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--count", type=int, help="packages per run (default 10000; quick 300)")
    args.add_argument("--runs", type=int, default=3, help="runs per backend (default 3)")
    args.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    args.add_argument(
        "--section",
        choices=["all", "packages", "directory"],
        default="all",
        help="many packages, one directory package against DVC, or both (default)",
    )
    args.add_argument("--files", type=int, help="files in the directory (default 10000)")
    args.add_argument("--no-dvc", action="store_true", help="skip the DVC rows")
    args.add_argument(
        "--compare-with",
        type=Path,
        help="another checkout (e.g. an older commit) whose put command runs in the same rounds",
    )
    options = args.parse_args()
    quick = options.quick
    count = options.count or (300 if quick else 10_000)
    files = options.files or (1000 if quick else DIR_FILES)
    root = temp_root(options.tmpdir)
    packages = options.section in ("all", "packages")
    header(
        "many 1 KiB files: single-file packages, and one directory package against dvc add",
        quick,
        packages=f"{count:,} per run, {SIZE} B of distinct random bytes each, "
        f"{min(NAMES, count)} names" if packages else "section skipped",
        directory=f"{files:,} files of {SIZE} B, one package; `dvc add` in the same rounds"
        if options.section != "packages" else "section skipped",
        runs=f"{options.runs} per row, interleaved (rotating order), `sync` between them",
        blobs=f"local store, fsync {'on' if load_settings().fsync else 'OFF'} "
        "(ARTIFACTSTORE_FSYNC; on, the default: bytes and directory entries are durable "
        "before a package is registered)",
        postgres="" if options.no_postgres or not packages else "PostgreSQL 15 started by "
        "postgres_server() with fsync=off: its figures are not durable-commit figures",
        temp=str(root),
    )  # fmt: skip
    checks: list[tuple[str, bool]] = []
    rows: list[Any] = []
    with temp_dir(root, "bench-put-small-") as work:
        if packages:
            checks += packages_section(work, count, options, rows)
        if options.section != "packages":
            checks += directory_section(
                work, files, options.runs, not options.no_dvc, options.compare_with, rows
            )
    write_results("bench_put_small", rows, checks, quick)
    return verdict(checks, quick)


def packages_section(
    work: Path, count: int, options: argparse.Namespace, rows: list[Any]
) -> list[tuple[str, bool]]:
    """Many single-file packages, batched and one by one; the put_many target check (the
    results are added to ``rows``)."""
    samples = Samples()
    with maybe_postgres(options.no_postgres) as admin:
        for run in range(options.runs):
            contents = [os.urandom(SIZE) for _ in range(count)]
            steps: dict[str, Callable[[], float]] = {
                BLOBS: partial(timed_blob_writes, work / f"blobs-only-{run}", contents),
            }
            for label, put in ((SQLITE_MANY, put_batches), (SQLITE, put_all)):
                where = work / f"{put.__name__}-{run}"
                steps[label] = partial(timed_puts, put, sqlite_url(where / "r.db"), where, contents)
            if admin is not None:
                for label, put in ((POSTGRES_MANY, put_batches), (POSTGRES, put_all)):
                    database_url = new_postgres_database(admin, f"bench_{put.__name__}_{run}")
                    where = work / f"pg-{put.__name__}-{run}"
                    steps[label] = partial(timed_puts, put, database_url, where, contents)
            for name, step in rotated(list(steps.items()), run):
                seconds = step()
                samples.add(name, count / seconds)
                print(f"run {run + 1}/{options.runs}: {name}: {count / seconds:,.0f}/s", flush=True)
                settle()
    print()
    table(
        ["what", "median per s", "min-max per s", "ms per package"],
        [
            [name, samples.median(name), samples.spread(name), 1000 / samples.median(name)]
            for name in samples.values
        ],
    )
    rows += sample_rows(f"{count:,} packages of {SIZE} B", samples, "packages/s")
    rate = samples.median(SQLITE_MANY)
    single = samples.median(SQLITE)
    print(f"blob writes are {single / samples.median(BLOBS):.0%} of a one-call put's time")
    print(f"one put call per package on SQLite: {single:,.0f}/s (report only)")
    if POSTGRES in samples.values:
        print("PostgreSQL figures: server runs with fsync=off (report only, no target)")
    if options.profile:
        with ArtifactStore.open(sqlite_url(work / "profile.db"), str(work / "pb")) as store:
            extra = [os.urandom(SIZE) for _ in range(min(count, 1000))]
            profiled(lambda: put_all(store, extra))
    print()
    return [(f"SQLite put_many {rate:,.0f} packages/s >= {TARGET:,.0f}/s", rate >= TARGET)]


if __name__ == "__main__":
    raise SystemExit(main())

"""Many small packages: 1 KiB single-file packages, put in batches and one by one.

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
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

from _common import (
    Samples,
    header,
    parser,
    profiled,
    rotated,
    settle,
    sqlite_url,
    table,
    temp_dir,
    temp_root,
    timed,
    verdict,
)

from artifactstore_core import ArtifactStore, PutRequest
from artifactstore_core.config import create_engine, load_settings
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


def new_postgres_database(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.dispose()


@contextlib.contextmanager
def maybe_postgres(skip: bool) -> Iterator[str | None]:
    """The admin URL of a throw-away PostgreSQL server for the block (None when skipped)."""
    if skip:
        yield None
        return
    with postgres_server() as server:
        yield server.url()


def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--count", type=int, help="packages per run (default 10000; quick 300)")
    args.add_argument("--runs", type=int, default=3, help="runs per backend (default 3)")
    args.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    options = args.parse_args()
    quick = options.quick
    count = options.count or (300 if quick else 10_000)
    root = temp_root(options.tmpdir)
    header(
        "put of many 1 KiB single-file packages",
        quick,
        packages=f"{count:,} per run, {SIZE} B of distinct random bytes each, "
        f"{min(NAMES, count)} names",
        runs=f"{options.runs} per backend, interleaved (rotating order), `sync` between them",
        blobs=f"local store, fsync {'on' if load_settings().fsync else 'OFF'} "
        "(ARTIFACTSTORE_FSYNC; on, the default, fsyncs the file and its directory)",
        postgres="" if options.no_postgres else "PostgreSQL 15 started by postgres_server() "
        "with fsync=off: its figures are not durable-commit figures",
        temp=str(root),
    )  # fmt: skip
    samples = Samples()
    with temp_dir(root, "bench-put-small-") as work, maybe_postgres(options.no_postgres) as admin:
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
    target = f"SQLite put_many {rate:,.0f} packages/s >= {TARGET:,.0f}/s"
    return verdict([(target, rate >= TARGET)], quick)


if __name__ == "__main__":
    raise SystemExit(main())

"""SQLite durability cost: put rate with ``synchronous=NORMAL`` (default) against ``FULL``.

Each run puts N 1 KiB single-file packages (default 2,000; distinct random content) into a
fresh SQLite registry with a fresh local blob store (blob fsync as configured, on by
default), once with ``ARTIFACTSTORE_SQLITE_SYNCHRONOUS=NORMAL`` and once with ``FULL``,
both as one ``put`` call per package (one commit each: the case FULL costs most) and as
``put_many`` batches of 100. The levels alternate in rotating order; the report gives
medians and the FULL/NORMAL ratio of each mode (report only, no target).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from _common import (
    Samples,
    header,
    parser,
    rotated,
    sample_rows,
    settle,
    sqlite_url,
    table,
    temp_dir,
    temp_root,
    timed,
    write_results,
)

from artifactstore_core import ArtifactStore, PutRequest
from artifactstore_core.config import load_settings

SIZE = 1024
BATCH = 100
LEVELS = ("NORMAL", "FULL")
MODES = ("put", f"put_many/{BATCH}")


def _put(store: ArtifactStore, contents: Sequence[bytes], mode: str) -> None:
    if mode == "put":
        for index, content in enumerate(contents):
            store.put(f"bench/sync-{index}", {"part.bin": content})
        return
    for start in range(0, len(contents), BATCH):
        store.put_many(
            PutRequest(f"bench/sync-{index}", {"part.bin": contents[index]})
            for index in range(start, min(start + BATCH, len(contents)))
        )


def timed_puts(where: Path, level: str, mode: str, contents: Sequence[bytes]) -> float:
    """Seconds for putting ``contents`` into a fresh registry at ``level`` (open not timed)."""
    settings = load_settings(sqlite_synchronous=level)
    with ArtifactStore.open(sqlite_url(where / "r.db"), str(where), settings=settings) as store:
        store.put("bench/warm-up", {"part.bin": os.urandom(SIZE)})
        seconds, _ = timed(lambda: _put(store, contents, mode))
    return seconds


def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--count", type=int, help="packages per run (default 2000; quick 200)")
    args.add_argument("--runs", type=int, default=5, help="runs per level (default 5)")
    options = args.parse_args()
    count = options.count or (200 if options.quick else 2_000)
    root = temp_root(options.tmpdir)
    header(
        "SQLite synchronous=NORMAL against FULL, put of 1 KiB packages",
        options.quick,
        packages=f"{count:,} per run, {SIZE} B of distinct random bytes each",
        runs=f"{options.runs} per level and mode, interleaved (rotating order), `sync` between",
        blobs=f"local store, fsync {'on' if load_settings().fsync else 'OFF'}",
        temp=str(root),
    )
    samples = Samples()
    with temp_dir(root, "bench-sqlite-sync-") as work:
        for run in range(options.runs):
            contents = [os.urandom(SIZE) for _ in range(count)]
            steps: list[tuple[str, Callable[[], float]]] = [
                (f"{mode}, {level}", partial(timed_puts, work / f"{i}-{j}-{run}", level, mode,
                                             contents))
                for i, mode in enumerate(MODES)
                for j, level in enumerate(LEVELS)
            ]  # fmt: skip
            for name, step in rotated(steps, run):
                rate = count / step()
                samples.add(name, rate)
                print(f"run {run + 1}/{options.runs}: {name}: {rate:,.0f}/s", flush=True)
                settle()
    print()
    table(
        ["what", "median packages/s", "min-max", "ms per package"],
        [
            [name, samples.median(name), samples.spread(name), 1000 / samples.median(name)]
            for name in samples.values
        ],
    )
    for mode in MODES:
        ratio = samples.median(f"{mode}, FULL") / samples.median(f"{mode}, NORMAL")
        print(f"{mode}: FULL runs at {ratio:.0%} of NORMAL's rate")
    rows = [
        row
        for mode in MODES
        for row in sample_rows(f"{count:,} packages of {SIZE} B, {mode}", samples, "packages/s",
                               names=[f"{mode}, {level}" for level in LEVELS],
                               baseline=f"{mode}, NORMAL")
    ]  # fmt: skip
    write_results("bench_sqlite_synchronous", rows, [], options.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

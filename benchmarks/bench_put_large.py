"""``put`` of one large file against plain SHA-256 of the same bytes (page cache warm).

Each round runs, in a rotating order: hashlib SHA-256 (the baseline), BLAKE3 alone, the
library's ``hash_copy`` without a destination, ``shutil.copyfile`` + fsync, and
``ArtifactStore.put`` (SQLite + local store, fsync'd: the default), plus ``put`` with a
local store built with ``fsync=False`` to show what the fsync costs. Each ``put`` runs in a
child process of its own, so its peak memory can be read from that process alone; the
stored blob is deleted after each ``put`` so the next one is not skipped as a duplicate.

Targets: median of the per-round ratios put / SHA-256 <= 1.5; peak RSS of the put process
< 150 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
from _common import (
    MIB,
    Samples,
    fsync_path,
    header,
    hwm_mib,
    parser,
    peak_rss_mib,
    profiled,
    reset_peak_rss,
    rotated,
    rss_mib,
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

from artifactstore_core.config import load_settings
from artifactstore_core.hashing.stream import hash_copy

RATIO_TARGET = 1.5
MEMORY_TARGET_MB = 150  # megabytes (10**6 bytes), as the target is stated
CHUNK = MIB
BASELINE = "sha256 (hashlib, 1 MiB reads)"
PUT = "put (SQLite + local, fsync)"


# ---------------------------------------------------------------------------- the child
def child_put(database_url: str, storage: str, source: str, fsync: bool) -> None:
    """Run one put in this (child) process and print its figures as JSON."""
    from artifactstore_core.config import create_engine
    from artifactstore_core.storage.local import LocalBlobStore
    from artifactstore_core.store import ArtifactStore

    if fsync:
        store = ArtifactStore.open(database_url, storage, migrate=False)
    else:
        store = ArtifactStore(create_engine(database_url), LocalBlobStore(storage, fsync=False))
    with store:
        reset = reset_peak_rss()
        before = rss_mib()
        seconds, package = timed(lambda: store.put("bench/large", Path(source)))
        after_peak = hwm_mib() if reset else peak_rss_mib()
        store.blobs.delete(package.files[0].blob.blake3)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "process_peak_mib": peak_rss_mib(),
                "before_mib": before,
                "put_peak_mib": after_peak,
                "hwm_reset": reset,
            }
        )
    )


def run_put(database_url: str, storage: Path, source: Path, fsync: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--child-put", database_url, str(storage), str(source)]
    if not fsync:
        command.append("--no-fsync")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"put child failed:\n{result.stdout}\n{result.stderr}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


# ---------------------------------------------------------------------------- baselines
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def blake3_file(path: Path) -> str:
    digest = blake3.blake3()
    with path.open("rb", buffering=0) as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return str(digest.hexdigest())


def hash_copy_file(path: Path) -> object:
    with path.open("rb") as file:
        return hash_copy(file)


def copy_fsync(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    fsync_path(target)
    fsync_path(target.parent)


def make_random_file(path: Path, size: int) -> None:
    with path.open("wb") as file:
        remaining = size
        while remaining:
            count = min(remaining, 16 * MIB)
            file.write(os.urandom(count))
            remaining -= count
        file.flush()
        os.fsync(file.fileno())


# ---------------------------------------------------------------------------- main
def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--size-mib", type=int, help="file size (default 1024; quick 64)")
    args.add_argument("--rounds", type=int, help="interleaved rounds (default 5; quick 2)")
    args.add_argument("--child-put", nargs=3, help=argparse.SUPPRESS)
    args.add_argument("--no-fsync", action="store_true", help=argparse.SUPPRESS)
    options = args.parse_args()
    if options.child_put:
        child_put(*options.child_put, fsync=not options.no_fsync)
        return 0

    quick = options.quick
    size = (options.size_mib or (64 if quick else 1024)) * MIB
    rounds = options.rounds or (2 if quick else 5)
    root = temp_root(options.tmpdir)
    header(
        "put of one large file vs hashlib SHA-256",
        quick,
        file=f"{size / MIB:,.0f} MiB of random bytes, page cache warm",
        rounds=f"{rounds}, methods interleaved in a rotating order, `sync` between them",
        temp=str(root),
        fsync=f"{'on' if load_settings().fsync else 'OFF'} for the put (ARTIFACTSTORE_FSYNC)",
        memory="peak RSS of a child process that runs only the put "
        "(ru_maxrss: interpreter + imports + put); 'put increment' = VmHWM after a "
        "clear_refs reset just before the put, minus VmRSS then",
    )
    with temp_dir(root, "bench-put-large-") as work:
        source = work / "random.bin"
        seconds, _ = timed(lambda: make_random_file(source, size))
        print(f"created {source.name} in {seconds:.1f} s")
        sha256_file(source)  # warm the page cache (and check it all fits)
        storage, database_url = work / "blobs", sqlite_url(work / "registry.db")
        from artifactstore_core.store import ArtifactStore

        ArtifactStore.open(database_url, str(storage)).close()  # create the schema once

        samples, memory = Samples(), Samples()
        copy_target = work / "copy.bin"

        def put(fsync: bool) -> float:
            figures = run_put(database_url, storage, source, fsync)
            if fsync:
                memory.add("process", figures["process_peak_mib"])
                memory.add("increment", figures["put_peak_mib"] - figures["before_mib"])
            return figures["seconds"]

        methods = {
            BASELINE: lambda: timed(lambda: sha256_file(source))[0],
            "blake3 alone (1 MiB reads)": lambda: timed(lambda: blake3_file(source))[0],
            "hash_copy, no write (library)": lambda: timed(lambda: hash_copy_file(source))[0],
            "copyfile + fsync": lambda: timed(lambda: copy_fsync(source, copy_target))[0],
            PUT: lambda: put(True),
            "put (local store fsync=False)": lambda: put(False),
        }
        for index in range(rounds):
            for name, run in rotated(list(methods.items()), index):
                samples.add(name, run())
                copy_target.unlink(missing_ok=True)
                settle()
            put_seconds = samples.values[PUT][-1]
            ratio = put_seconds / samples.values[BASELINE][-1]
            samples.add("ratio", ratio)
            print(f"round {index + 1}/{rounds}: put/sha256 = {ratio:.2f}", flush=True)
        print()
        if options.profile:
            with ArtifactStore.open(database_url, str(storage), migrate=False) as store:
                package = profiled(lambda: store.put("bench/large", source))
                store.blobs.delete(package.files[0].blob.blake3)

    baseline = samples.median(BASELINE)
    table(
        ["method", "median s", "GB/s", "x sha256", "min-max s"],
        [
            [name, samples.median(name), size / samples.median(name) / 1e9,
             samples.median(name) / baseline, samples.spread(name)]
            for name in methods
        ],
    )  # fmt: skip
    ratio = samples.median("ratio")
    process_mb = max(memory.values["process"]) * MIB / 1e6
    table(
        ["put memory", "median MiB", "max MiB"],
        [
            ["process peak RSS", memory.median("process"), max(memory.values["process"])],
            ["put increment", memory.median("increment"), max(memory.values["increment"])],
        ],
    )
    print(f"put / sha256: median of per-round ratios {ratio:.2f} ({samples.spread('ratio')})")
    checks = [
        (f"put / sha256 = {ratio:.2f} <= {RATIO_TARGET}", ratio <= RATIO_TARGET),
        (
            f"peak RSS of the put process {process_mb:.0f} MB < {MEMORY_TARGET_MB} MB",
            process_mb < MEMORY_TARGET_MB,
        ),
    ]
    rows = sample_rows(f"{size / MIB:,.0f} MiB file", samples, "MB/s", names=list(methods),
                       baseline=BASELINE, convert=lambda s: size / s / 1e6, size=size)  # fmt: skip
    rows[list(methods).index(PUT)] |= {
        "peak_rss_mib": max(memory.values["process"]),
        "headline": True,
    }
    write_results("bench_put_large", rows, checks, quick)
    return verdict(checks, quick)


if __name__ == "__main__":
    raise SystemExit(main())

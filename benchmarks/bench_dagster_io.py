"""ArtifactStoreIOManager against Dagster's FilesystemIOManager: same job, same run.

A job of N small assets (chains of ``--chain``, so most steps also load an input) runs
with each IO manager on the same kind of Dagster instance, interleaved round by round
(order alternating), each on a fresh instance and a fresh (pre-migrated) registry. The
registry is opened inside each run, as a new run worker would. The figure is the median
of the per-round ratios; the target is at most ``--max-ratio`` (1.25).

    .venv/bin/python benchmarks/bench_dagster_io.py [--assets 200] [--rounds 3]

Exit status 1 when the median ratio is above the target. Results go to
``benchmarks/results/bench_dagster_io.json`` (``_common.write_results``).
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Samples, sample_rows, write_results
from _dagster_jobs import build_assets
from dagster import AssetsDefinition, DagsterInstance, FilesystemIOManager, materialize

from artifactstore_core.store import ArtifactStore
from artifactstore_dagster import ArtifactStoreIOManager, ArtifactStoreResource, close_cached_stores

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def make_instance(kind: str, root: Path) -> DagsterInstance:
    if kind == "memory":
        return DagsterInstance.ephemeral()
    home = root / "dagster_home"
    home.mkdir()
    return DagsterInstance.local_temp(str(home))


def filesystem_io(root: Path) -> Any:
    return FilesystemIOManager(base_dir=str(root / "fs_io"))


def artifactstore_io(root: Path) -> Any:
    database_url = f"sqlite:///{root / 'registry.db'}"
    ArtifactStore.open(database_url, str(root / "blobs")).close()  # migrate outside the timing
    resource = ArtifactStoreResource(database_url=database_url, storage_url=str(root / "blobs"))
    return ArtifactStoreIOManager(store=resource)


def timed_run(assets: list[AssetsDefinition], kind: str, make_io: Callable[[Path], Any]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-dagster-io-") as tmp:
        root = Path(tmp)
        io_manager = make_io(root)
        with make_instance(kind, root) as instance:
            start = time.perf_counter()
            result = materialize(
                assets, resources={"io_manager": io_manager}, instance=instance, run_config=QUIET
            )
            elapsed = time.perf_counter() - start
        close_cached_stores()
        if not result.success:
            raise RuntimeError("benchmark run failed")
        return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--chain", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instance", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--max-ratio", type=float, default=1.25)
    args = parser.parse_args(argv)

    assets = build_assets(args.assets, args.chain)
    timed_run(assets[: args.chain], args.instance, artifactstore_io)  # warm imports and caches
    timed_run(assets[: args.chain], args.instance, filesystem_io)
    rounds = []
    for number in range(args.rounds):
        order = [("filesystem", filesystem_io), ("artifactstore", artifactstore_io)]
        if number % 2:
            order.reverse()
        times = {name: timed_run(assets, args.instance, make_io) for name, make_io in order}
        ratio = times["artifactstore"] / times["filesystem"]
        rounds.append({**times, "ratio": ratio})
        print(
            f"round {number + 1}: filesystem {times['filesystem']:.2f} s, "
            f"artifactstore {times['artifactstore']:.2f} s, ratio {ratio:.3f}",
            flush=True,
        )
    median = statistics.median(r["ratio"] for r in rounds)
    total = sum(r["artifactstore"] for r in rounds) / sum(r["filesystem"] for r in rounds)
    verdict = "PASS" if median <= args.max_ratio else "FAIL"
    print(
        f"{args.assets} assets on a {args.instance} instance: median ratio {median:.3f}, "
        f"ratio of totals {total:.3f} (target <= {args.max_ratio}): {verdict}"
    )
    samples = Samples()
    for result in rounds:
        for name in ("filesystem", "artifactstore"):
            samples.add(name, result[name])
    scenario = f"{args.assets} assets in chains of {args.chain}, {args.instance} instance"
    rows = sample_rows(scenario, samples, "s", baseline="filesystem", ratio_of_totals=total)
    rows[1]["headline"] = True
    checks = [(f"median ratio {median:.3f} <= {args.max_ratio}", verdict == "PASS")]
    write_results("bench_dagster_io", rows, checks, quick=args.assets < 200)  # below: indicative
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())

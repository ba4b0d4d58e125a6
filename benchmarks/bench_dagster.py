"""The documented Dagster setup under the multiprocess executor against FilesystemIOManager.

A job of small assets (chains of ``--chain``: most steps also load an input) runs with
Dagster's multiprocess executor (``--max-concurrent`` step processes) on a persistent
instance, three ways, in rotating order round by round, each on a fresh instance and a
fresh (pre-migrated) registry:

| row | what |
|---|---|
| **filesystem** (baseline) | ``FilesystemIOManager`` |
| **artifactstore** | ``build_artifactstore_defs(...)``: the resource and the IO manager |
| **artifactstore + checks** | the same, ``checked_assets=`` every asset, ``check_mode="digest"`` |

The registry is SQLite with local blobs; the checks are the guide's first example.

The figures are the medians (min-max) of the per-round ratios to the baseline. Target:
the IO manager alone at most ``--max-ratio`` (1.1x); the checks are reported.

    .venv/bin/python benchmarks/bench_dagster.py [--quick] [--profile] [--assets 12]

``--profile`` prints the time a step process spends where (from Dagster's event log:
process start to step start, computing, storing the output, loading inputs) for one more
run of each variant, and a cProfile of the artifact-store IO manager's own calls in a
single-process run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    Samples,
    header,
    parser,
    profiled,
    rotated,
    sample_rows,
    settle,
    table,
    temp_dir,
    temp_root,
    write_results,
)
from _common import timed as timed_call
from _common import verdict as print_verdict
from _dagster_jobs import BASELINE, VARIANTS, define_job, registry_urls
from dagster import DagsterEventType, DagsterInstance, build_reconstructable_job, execute_job

from artifactstore_core.store import ArtifactStore

QUIET = {"console": {"config": {"log_level": "ERROR"}}}


def prepare(variant: str, root: Path) -> None:
    """What a deployment does once, outside the timing: migrate the registry."""
    if variant != BASELINE:
        ArtifactStore.open(*registry_urls(root)).close()


@dataclass
class Run:
    """One timed run: wall-clock seconds of ``execute_job``, its events, and the clock
    (``time.time()``) when it was called and when it returned."""

    seconds: float
    events: list[Any]
    called: float
    returned: float


def run_once(variant: str, tmp: Path, assets: int, chain: int, max_concurrent: int) -> Run:
    """One run of ``variant`` on a fresh instance and registry."""
    with temp_dir(tmp, "bench-dagster-") as root:
        prepare(variant, root)
        job = build_reconstructable_job(
            "_dagster_jobs",
            "define_job",
            reconstructable_kwargs={
                "variant": variant, "root": str(root), "assets": assets, "chain": chain,
            },
            reconstructor_working_directory=str(REPO / "benchmarks"),
        )  # fmt: skip
        run_config = {
            "execution": {"config": {"multiprocess": {"max_concurrent": max_concurrent}}},
            "loggers": QUIET,
        }
        (root / "home").mkdir()
        with DagsterInstance.local_temp(str(root / "home")) as instance:
            settle()
            called = time.time()
            seconds, events = timed_call(lambda: _execute(job, instance, run_config))
            return Run(seconds, events, called, time.time())


def _execute(job: Any, instance: DagsterInstance, run_config: dict[str, Any]) -> list[Any]:
    # Step processes log a DEBUG line each to stderr whatever the run config says
    # (Dagster's context-free log manager): send it to a file, shown if the run fails.
    log = Path(instance.root_directory) / "stderr.log"
    with log.open("w+") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            with execute_job(job, instance=instance, run_config=run_config) as result:
                success, run_id = result.success, result.run_id
                failures = [e.event_specific_data for e in result.all_events if e.is_failure]
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if not success:
        raise RuntimeError(f"benchmark run failed: {failures}\n{log.read_text()[-3000:]}")
    return list(instance.all_logs(run_id))


def check_evaluations(events: list[Any]) -> int:
    return sum(
        1
        for e in events
        if e.dagster_event is not None
        and e.dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    )


#: Phases of a step process, as (name, from event, to event) in the run's event log.
PHASES = (
    ("process start-up", "STEP_WORKER_STARTING", "STEP_WORKER_STARTED"),
    ("plan + resources", "STEP_WORKER_STARTED", "STEP_START"),
    ("load inputs", "STEP_START", "LOADED_INPUT"),
    ("store the output", "STEP_OUTPUT", "HANDLED_OUTPUT"),
    ("whole step", "STEP_WORKER_STARTING", "STEP_SUCCESS"),
)


def run_phases(run: Run) -> dict[str, float]:
    """Seconds of a run before its first step process, from then to its last step event,
    and after that (step processes exiting, the run finishing)."""
    launched = [
        r.timestamp
        for r in run.events
        if r.dagster_event is not None
        and r.dagster_event.event_type == DagsterEventType.STEP_WORKER_STARTING
    ]
    last = max(r.timestamp for r in run.events if r.step_key is not None)
    return {
        "run: until the first step process": min(launched) - run.called,
        "run: steps (first launched -> last step event)": last - min(launched),
        "run: after the last step event": run.returned - last,
    }


#: Phases of a step process, as (name, from event, to event) in the run's event log.
PHASES = (
    ("process start-up", "STEP_WORKER_STARTING", "STEP_WORKER_STARTED"),
    ("plan + resources", "STEP_WORKER_STARTED", "STEP_START"),
    ("load inputs", "STEP_START", "LOADED_INPUT"),
    ("store the output", "STEP_OUTPUT", "HANDLED_OUTPUT"),
    ("whole step", "STEP_WORKER_STARTING", "STEP_SUCCESS"),
)


def step_phases(events: list[Any]) -> dict[str, float]:
    """Median seconds per step process in each phase (``PHASES``), over the steps that
    have it, from the event log (the last ``LOADED_INPUT``, the first of the others)."""
    marks: dict[str, dict[str, float]] = {}
    for record in events:
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        step = marks.setdefault(event.step_key, {})
        if event.event_type_value == "LOADED_INPUT" or event.event_type_value not in step:
            step[event.event_type_value] = record.timestamp
    found: dict[str, list[float]] = {}
    for step in marks.values():
        for name, start, end in PHASES:
            if start in step and end in step:
                found.setdefault(name, []).append(step[end] - step[start])
    return {f"step: {n}": statistics.median(found[n]) for n, _, _ in PHASES if n in found}


def profile_io_manager(tmp: Path, assets: int, chain: int) -> None:
    """cProfile of one run with the artifact-store IO manager in this process."""
    with temp_dir(tmp, "bench-dagster-profile-") as root:
        prepare("artifactstore", root)
        job = define_job("artifactstore", str(root), assets, chain)
        profiled(lambda: job.execute_in_process(run_config={"loggers": QUIET}))


def main(argv: list[str] | None = None) -> int:
    args_parser = parser(__doc__.splitlines()[0])
    args_parser.add_argument("--assets", type=int, default=8)
    args_parser.add_argument("--chain", type=int, default=4)
    args_parser.add_argument("--rounds", type=int, default=3)
    args_parser.add_argument("--max-concurrent", type=int, default=2)
    args_parser.add_argument("--max-ratio", type=float, default=1.1)
    args = args_parser.parse_args(argv)
    if args.quick:
        args.assets, args.chain, args.rounds = 4, 2, 2
    tmp = temp_root(args.tmpdir)
    header(
        "Dagster: the documented setup under the multiprocess executor vs FilesystemIOManager",
        args.quick,
        job=f"{args.assets} assets in chains of {args.chain}, "
        f"multiprocess executor (max_concurrent={args.max_concurrent}), SQLite instance",
        registry="SQLite + local blobs (pre-migrated), checks in digest mode",
        rounds=f"{args.rounds}, variants in rotating order",
    )

    if not args.quick:
        for variant in VARIANTS:  # warm the page cache
            run_once(variant, tmp, args.chain, args.chain, args.max_concurrent)

    samples, ratios = Samples(), Samples()
    checks_seen = 0
    for number in range(args.rounds):
        times = {}
        for variant in rotated(VARIANTS, number):
            run = run_once(variant, tmp, args.assets, args.chain, args.max_concurrent)
            times[variant] = run.seconds
            samples.add(variant, run.seconds)
            if variant.endswith("checks"):
                checks_seen = check_evaluations(run.events)
        for variant in VARIANTS:
            ratios.add(variant, times[variant] / times[BASELINE])
        shown = ", ".join(f"{v} {times[v]:.2f} s" for v in VARIANTS)
        print(f"round {number + 1}: {shown}", flush=True)
    print()

    table(
        ["variant", "median s", "min-max s", "x filesystem (median)", "min-max x"],
        [
            [v, samples.median(v), samples.spread(v), ratios.median(v), ratios.spread(v)]
            for v in VARIANTS
        ],
    )
    if args.profile:
        runs = {v: run_once(v, tmp, args.assets, args.chain, args.max_concurrent) for v in VARIANTS}
        print("Where one more run of each spent its time (s; steps: median per step process):")
        phases = {v: {**run_phases(r), **step_phases(r.events)} for v, r in runs.items()}
        names = list(dict.fromkeys(name for p in phases.values() for name in p))
        table(
            ["phase", *VARIANTS],
            [[n, *(phases[v].get(n, float("nan")) for v in VARIANTS)] for n in names],
        )
        profile_io_manager(tmp, args.assets, args.chain)

    alone = ratios.median("artifactstore")
    checks = [
        (
            f"IO manager alone {alone:.3f}x FilesystemIOManager <= {args.max_ratio}x",
            alone <= args.max_ratio,
        ),
        (
            f"every asset checked ({checks_seen} of {args.assets} check evaluations)",
            checks_seen == args.assets,
        ),
    ]
    scenario = f"Dagster job, {args.assets} assets in chains of {args.chain}"
    rows = sample_rows(scenario, samples, "s", names=VARIANTS, baseline=BASELINE)
    write_results("bench_dagster", rows, checks, args.quick)
    return print_verdict(checks, args.quick)


if __name__ == "__main__":
    sys.exit(main())

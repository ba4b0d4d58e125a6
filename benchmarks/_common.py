"""Shared helpers for the benchmark scripts: timing, medians, memory, temp dirs, output.

The machines these run on are noisy (write-side speed varies 2-25x from moment to moment),
so every script measures its baseline in the same run, interleaved with the thing under
test, and reports medians and ratios rather than single absolute times.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
GIB = 1024 * MIB

if str(REPO) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------------------- arguments
def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke test (under a minute)"
    )
    result.add_argument(
        "--profile",
        action="store_true",
        help="after the measurements, run the thing under test once more under cProfile",
    )
    result.add_argument(
        "--tmpdir",
        default=os.environ.get("BENCH_TMPDIR"),
        help="where temporary stores and files go (default: $BENCH_TMPDIR or the system "
        "temp dir; it should be on the same disk as the repository)",
    )
    return result


# ---------------------------------------------------------------------------- timing
def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``function()`` took (wall clock, ``perf_counter``) and what it returned."""
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class Samples:
    """Named lists of measurements, collected round by round."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return median(self.values[name])

    def spread(self, name: str) -> str:
        """``min-max`` of the samples, for judging noise."""
        values = self.values[name]
        return f"{_number(min(values))}-{_number(max(values))}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def rotated(items: Sequence[Any], round_index: int) -> list[Any]:
    """``items`` rotated by ``round_index``: no method always runs first (or after another)."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def profiled(function: Callable[[], Any], top: int = 25) -> Any:
    """Run ``function`` under cProfile and print its top functions (own and cumulative time).

    Only the calling thread is profiled: time spent waiting on helper threads shows up in
    the waiting function (e.g. ``Future.result``).
    """
    import cProfile
    import pstats

    profile = cProfile.Profile()
    value = profile.runcall(function)
    stats = pstats.Stats(profile)
    for key in ("tottime", "cumulative"):
        print(f"--- cProfile, top {top} by {key}")
        stats.sort_stats(key).print_stats(top)
    return value


# ---------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_mib() -> float:
    """Resident set size of this process now (``VmRSS``), MiB."""
    return _status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (``ru_maxrss``, KiB on Linux), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS; False if refused.

    Writing ``5`` to ``/proc/self/clear_refs`` does this on Linux 4.0+; afterwards
    ``VmHWM`` is the peak since the reset (``ru_maxrss`` is not reset).
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def hwm_mib() -> float:
    """The kernel's peak-RSS mark ``VmHWM`` (since start or the last reset), MiB."""
    return _status_kib("VmHWM") / 1024


class RssSampler:
    """A thread sampling ``VmRSS`` every ``interval`` seconds; ``peak`` is the highest seen.

    A fallback where ``clear_refs`` is refused; it can miss spikes shorter than the interval.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mib())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


# ---------------------------------------------------------------------------- files
def temp_root(requested: str | None) -> Path:
    """The directory for temporary data; warns when it is not on the repository's disk."""
    root = Path(requested or tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    if os.stat(root).st_dev != os.stat(REPO).st_dev:
        print(
            f"warning: {root} is not on the same file system as {REPO}; "
            "pass --tmpdir to measure the repository's disk",
            file=sys.stderr,
        )
    return root


@contextlib.contextmanager
def temp_dir(root: Path, prefix: str) -> Iterator[Path]:
    """A new directory under ``root``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fsync_path(path: Path) -> None:
    """fsync a file (or directory) by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def settle() -> None:
    """Flush dirty pages of earlier steps (``sync``) so their write-back is not billed to
    the next measurement; call it between measurements, outside the timed part."""
    os.sync()


def new_postgres_database(admin_url: str, name: str) -> str:
    """Create database ``name`` on the server at ``admin_url``; its URL."""
    from artifactstore_core.config import create_engine

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# ---------------------------------------------------------------------------- processes
def run_command(argv: Sequence[str], cwd: Path | None = None, **env: str) -> float:
    """Seconds a command took, whole process (start-up included); raises if it failed."""
    environment = {**os.environ, **env}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=environment, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed: {done.stderr.decode()[-500:]}")
    return seconds


def library_cli(checkout: Path = REPO) -> list[str]:
    """argv that runs the ``artifactstore`` command of ``checkout`` (default: this one)
    with this interpreter; its modules are byte-compiled first, as an install does."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(checkout / "artifactstore_core")],
        capture_output=True,
        check=True,
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "from artifactstore_core.cli import main; main()"
    )
    return [sys.executable, "-c", code, str(checkout)]


def throwaway_tool(root: Path, package: str, command: str) -> tuple[Path | None, str]:
    """``command`` of ``package`` installed with uv into a new virtualenv under ``root``
    (never a project dependency), or ``None`` and why it could not be installed."""
    uv = shutil.which("uv")
    if uv is None:
        return None, "uv is not on PATH"
    venv = root / f"venv-{package}"
    python = str(venv / "bin" / "python")
    for argv in (
        [uv, "venv", "-q", str(venv)],
        [uv, "pip", "install", "-q", "--compile-bytecode", "--python", python, package],
    ):
        done = subprocess.run(argv, capture_output=True, check=False, timeout=900)
        if done.returncode:
            return None, f"{' '.join(argv[:3])} failed: {done.stderr.decode().strip()[-300:]}"
    return venv / "bin" / command, ""


# ---------------------------------------------------------------------------- output
def header(title: str, quick: bool, **facts: object) -> None:
    """The first lines of a report: what, when, where."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"== {title}{' (--quick: indicative only)' if quick else ''}")
    print(
        f"   {now}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    for key, value in facts.items():
        print(f"   {key}: {value}")
    print()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print an aligned text table (first column left-aligned, the others right-aligned)."""
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            value.ljust(width) if i == 0 else value.rjust(width)
            for i, (value, width) in enumerate(zip(row, widths, strict=True))
        )

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    print()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def verdict(checks: Sequence[tuple[str, bool]], quick: bool) -> int:
    """Print one line per target and a final PASS/FAIL line; the exit status to use.

    A full run exits 1 when a target fails; ``--quick`` (a smoke test at sizes the targets
    were not set for) always exits 0.
    """
    for description, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {description}")
    passed = all(ok for _, ok in checks)
    suffix = " (quick mode: indicative only)" if quick else ""
    print(f"{'PASS' if passed else 'FAIL'}{suffix}")
    return 0 if passed or quick else 1


# ---------------------------------------------------------------------------- results
RESULTS = REPO / "benchmarks" / "results"


def result_row(
    scenario: str,
    tool: str,
    unit: str,
    samples: Sequence[float],
    *,
    ratio_to: str | None = None,
    ratios: Sequence[float] | None = None,
    **extra: object,
) -> dict[str, Any]:
    """One row of a results file: median and min-max of ``samples`` (in ``unit``) and,
    with ``ratio_to``, the median and min-max of the per-round ``ratios`` to that row."""
    row: dict[str, Any] = {
        "scenario": scenario,
        "tool": tool,
        "unit": unit,
        "median": median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": list(samples),
    }
    if ratio_to is not None and ratios:
        row |= {
            "ratio_to": ratio_to,
            "ratio": median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    return row | extra


def sample_rows(
    scenario: str,
    samples: Samples,
    unit: str,
    *,
    names: Sequence[str] | None = None,
    baseline: str | None = None,
    convert: Callable[[float], float] | None = None,
    **extra: object,
) -> list[dict[str, Any]]:
    """``result_row`` of each of ``names`` (default: all) in ``samples``, values mapped by
    ``convert`` (e.g. seconds to MB/s) into ``unit``; with ``baseline``, each row but the
    baseline's has the per-round ratios of its values to the baseline's, in that unit."""

    def values(name: str) -> list[float]:
        return [convert(v) if convert else v for v in samples.values[name]]

    rows = []
    for name in names or list(samples.values):
        ratios = None
        if baseline is not None and name != baseline:
            pairs = zip(values(name), values(baseline), strict=True)
            ratios = [value / reference for value, reference in pairs]
        rows.append(result_row(scenario, name, unit, values(name), ratio_to=baseline if
                               ratios else None, ratios=ratios, **extra))  # fmt: skip
    return rows


def write_results(
    name: str,
    rows: Sequence[dict[str, Any]],
    checks: Sequence[tuple[str, bool]],
    quick: bool,
    directory: Path | None = None,
) -> Path:
    """Write ``benchmarks/results/<name>.json`` (overwritten each run): the rows (see
    ``result_row``), the target checks and the machine; the path written."""
    path = (directory or RESULTS) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": name,
        "version": 1,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rows": list(rows),
        "checks": [{"target": target, "ok": ok} for target, ok in checks],
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"results: {path}")
    return path

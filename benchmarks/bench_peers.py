"""artifact-store beside the tools users would pick instead: DVC and MLflow (whole process).

DVC and ``mlflow-skinny`` are installed with uv into throw-away virtualenvs under the temp
dir (byte-compiled; never project dependencies). A peer that cannot be installed (or is
turned off with ``--no-dvc`` / ``--no-mlflow``) is skipped with the reason printed. Every
command runs as a child process of its own: its wall time (start-up included) and its peak
RSS (``ru_maxrss`` from ``wait4`` of that child) are measured; setting up and resetting
state (fresh registries, projects, copies, deletions) happens outside the timed part, with
``sync`` between measurements. Rounds are interleaved, tools in a rotating order.

Scenarios (``--scenario``, default all):

- ``large``: one 1 GiB file of random bytes (page cache warm): ``artifactstore put`` vs
  ``dvc add`` (a fresh ``dvc init --no-scm`` project, cache on the same disk) vs
  ``mlflow.log_artifact`` (a fresh local file store) vs ``hashlib.sha256`` alone; then
  reading it back: verified ``artifactstore get`` vs ``dvc checkout`` vs
  ``mlflow.artifacts.download_artifacts``.
- ``directory``: a directory of 10,000 files of 1 KiB as one package, then the same
  directory again, unchanged (``dvc add`` twice; ``mlflow.log_artifacts`` in two runs);
  then reading it back as above.
- ``many``: 1,000 separate 1 KiB outputs: ``artifactstore put-many`` (one package each)
  vs one ``dvc add`` of 1,000 targets vs 1,000 ``mlflow.log_artifact`` calls in one run of
  one process.

Per scenario and peer it prints the median of the per-round ratios artifact-store / peer
with their min-max. Target: artifact-store faster than each peer in each scenario (ratio
< 1.0). ``--profile`` runs each artifact-store command once more under cProfile.
"""

from __future__ import annotations

import hashlib
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from _common import (
    MIB,
    REPO,
    Samples,
    header,
    library_cli,
    median,
    parser,
    rotated,
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

KIB = 1024
CHUNK = MIB
DVC_ENV = {"DVC_NO_ANALYTICS": "1"}
# mlflow-skinny has no SQL backend; its local store is the file store, which MLflow 3
# only opens with this opt-in.
MLFLOW_ENV = {"MLFLOW_ALLOW_FILE_STORE": "true"}

SHA256_CODE = """
import hashlib, sys
digest = hashlib.sha256()
with open(sys.argv[1], "rb", buffering=0) as file:
    while chunk := file.read(1 << 20):
        digest.update(chunk)
print(digest.hexdigest())
"""

# The file-system floors of the directory scenario (context), in one Python process, no
# fsync: ``copy`` copies each file into one directory (the work of MLflow's copy);
# ``layout`` writes each file to a temporary file in ``staging/`` and renames it to
# ``blake3/<hh>/<hh>/<hex>``, creating the shard directories (the metadata a
# content-addressed store needs to make each blob appear whole: three entries per file
# in a fresh store, where a copy makes one).
FLOOR_CODE = """
import hashlib, os, shutil, sys
mode, source, target = sys.argv[1:4]
os.makedirs(os.path.join(target, "staging"))
for index, entry in enumerate(sorted(os.scandir(source), key=lambda e: e.name)):
    if mode == "copy":
        shutil.copyfile(entry.path, os.path.join(target, entry.name))
        continue
    with open(entry.path, "rb", buffering=0) as file:
        data = file.read()
    name = hashlib.sha256(data).hexdigest()
    temporary = os.path.join(target, "staging", f".tmp-{index}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.close(fd)
    directory = os.path.join(target, "blake3", name[:2], name[2:4])
    os.makedirs(directory, exist_ok=True)
    os.rename(temporary, os.path.join(directory, name))
"""

# The floor of a durable copy (context for ``get`` of the large file): the kernel copies
# the file (``copy_file_range``), then ``fsync``; no hashing.
DURABLE_COPY_CODE = """
import os, sys
source = os.open(sys.argv[1], os.O_RDONLY)
target = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
while os.copy_file_range(source, target, 1 << 23):
    pass
os.fsync(target)
"""

# One MLflow process: ``log URI PATH...`` logs each file with ``log_artifact`` (a
# directory with ``log_artifacts``) in one new run and prints the run id; ``get URI RUN
# PATH DEST`` downloads an artifact of a run.
MLFLOW_CODE = """
import os, sys
import mlflow
command, uri = sys.argv[1], sys.argv[2]
mlflow.set_tracking_uri(uri)
if command == "log":
    with mlflow.start_run() as run:
        for path in sys.argv[3:]:
            if os.path.isdir(path):
                mlflow.log_artifacts(path, artifact_path=os.path.basename(path))
            else:
                mlflow.log_artifact(path)
    print(run.info.run_id)
else:
    run_id, path, destination = sys.argv[3:6]
    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=destination)
"""

# Row names: the commands measured (artifact-store's, the peers', the baseline).
AS_PUT = "artifactstore put"
AS_AGAIN = "artifactstore put, again unchanged"
AS_GET = "artifactstore get (verified)"
AS_MANY = "artifactstore put-many"
NO_FSYNC = ", ARTIFACTSTORE_FSYNC=0 (context)"
DVC_ADD = "dvc add"
DVC_AGAIN = "dvc add, again unchanged"
DVC_CHECKOUT = "dvc checkout"
DVC_MANY = "dvc add (all targets at once)"
ML_LOG = "mlflow.log_artifact"
ML_LOG_DIR = "mlflow.log_artifacts"
ML_AGAIN = "mlflow.log_artifacts, again (new run)"
ML_GET = "mlflow.artifacts.download_artifacts"
ML_MANY = "mlflow.log_artifact per output (one process)"
SHA256 = "hashlib.sha256 alone"
FLOOR_DURABLE = "floor: kernel copy + fsync (Python, no hashing; context)"
FLOOR_COPY = "floor: copy each file (Python, no fsync; context)"
FLOOR_LAYOUT = "floor: stage + rename into blake3/hh/hh (Python, no fsync; context)"


# ---------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class Run:
    """One finished child process: wall time (s), peak RSS (MiB), its standard output."""

    seconds: float
    peak_rss_mib: float
    stdout: str


def measure(argv: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run ``argv`` as a child process; its wall time and its own peak RSS (``wait4``).

    Raises if it fails.
    """
    environment = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=cwd, env=environment, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode:
            message = err.read().decode(errors="replace")[-600:]
            raise RuntimeError(f"{' '.join(map(str, argv[:4]))} ... failed: {message}")
        return Run(seconds, usage.ru_maxrss / KIB, out.read().decode(errors="replace"))


def untimed(argv: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a set-up command (not measured); its standard output."""
    return measure(argv, cwd, env).stdout


@dataclass
class Results:
    """Seconds and peak RSS per tool, round by round, and per-round ratios."""

    seconds: Samples = field(default_factory=Samples)
    rss: Samples = field(default_factory=Samples)
    ratios: Samples = field(default_factory=Samples)

    def add(self, tool: str, run: Run) -> None:
        self.seconds.add(tool, run.seconds)
        self.rss.add(tool, run.peak_rss_mib)


# ---------------------------------------------------------------------------- the tools
@dataclass(frozen=True)
class Tools:
    """Command lines of the tools under comparison (a peer is None when skipped)."""

    artifactstore: list[str]
    dvc: Path | None
    mlflow_python: Path | None


def artifactstore_env(where: Path) -> dict[str, str]:
    return {
        "ARTIFACTSTORE_DATABASE_URL": sqlite_url(where / "registry.db"),
        "ARTIFACTSTORE_STORAGE_URL": str(where / "blobs"),
    }


def new_registry(tools: Tools, where: Path) -> dict[str, str]:
    """A fresh registry (schema created, not timed); its environment."""
    where.mkdir()
    env = artifactstore_env(where)
    untimed([*tools.artifactstore, "migrate"], env=env)
    return env


def new_dvc_project(tools: Tools, project: Path) -> list[str]:
    """A fresh ``dvc init --no-scm`` project (not timed); the ``dvc`` argv prefix."""
    assert tools.dvc is not None
    project.mkdir(exist_ok=True)
    dvc = [str(tools.dvc)]
    untimed([*dvc, "init", "--no-scm", "-q"], cwd=project, env=DVC_ENV)
    return dvc


def mlflow_argv(tools: Tools) -> list[str]:
    assert tools.mlflow_python is not None
    return [str(tools.mlflow_python), "-c", MLFLOW_CODE]


def mlflow_uri(where: Path) -> str:
    return (where / "mlruns").as_uri()


def remove(path: Path) -> None:
    """Delete ``path`` (file or tree) and flush, outside the timed part."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    settle()


# ---------------------------------------------------------------------------- scenarios
Step = Callable[[Results], None]


def unsynced_step(tools: Tools, where: Path, tool: str, arguments: Sequence[str]) -> Step:
    """A context step: the artifact-store command with ``ARTIFACTSTORE_FSYNC=0`` on a fresh
    registry (what the fsyncs that the peers skip cost)."""

    def step(results: Results) -> None:
        env = new_registry(tools, where) | {"ARTIFACTSTORE_FSYNC": "0"}
        settle()
        results.add(tool + NO_FSYNC, measure([*tools.artifactstore, *arguments], env=env))
        remove(where)

    return step


@dataclass(frozen=True)
class Comparison:
    """artifact-store's ``ours`` against ``theirs``: a ratio per round, and a target."""

    ours: str
    theirs: str
    target: bool = True


def installed(tools: Tools, **steps: Step) -> dict[str, Step]:
    """The steps whose tool is installed (``dvc``, ``mlflow``; the others always are)."""
    missing = {"dvc": tools.dvc is None, "mlflow": tools.mlflow_python is None}
    return {name: step for name, step in steps.items() if not missing.get(name, False)}


def run_rounds(title: str, steps: dict[str, Step], rounds: int) -> Results:
    """``rounds`` rounds of ``steps`` in a rotating order."""
    results = Results()
    print(f"-- {title}", flush=True)
    for index in range(rounds):
        for _, step in rotated(list(steps.items()), index):
            before = {tool: len(values) for tool, values in results.seconds.values.items()}
            step(results)
            for tool, values in results.seconds.values.items():
                if len(values) > before.get(tool, 0):
                    rss = results.rss.values[tool][-1]
                    print(
                        f"round {index + 1}/{rounds}: {tool}: {values[-1]:.2f} s, {rss:.0f} MiB",
                        flush=True,
                    )
            settle()
    print()
    return results


def summarise(
    scenario: str, results: Results, comparisons: Sequence[Comparison]
) -> tuple[list[dict[str, Any]], list[tuple[str, bool]]]:
    """Print the scenario's table and ratios; its result rows and target checks."""
    for comparison in comparisons:
        if comparison.theirs not in results.seconds.values:
            continue
        pairs = zip(
            results.seconds.values[comparison.ours],
            results.seconds.values[comparison.theirs],
            strict=True,
        )
        for ours, theirs in pairs:
            results.ratios.add(_key(comparison), ours / theirs)
    table(
        ["tool", "median s", "min-max s", "peak RSS MiB (median)"],
        [
            [tool, results.seconds.median(tool), results.seconds.spread(tool),
             results.rss.median(tool)]
            for tool in results.seconds.values
        ],
    )  # fmt: skip
    rows = [_row(scenario, tool, results) for tool in results.seconds.values]
    checks = []
    for comparison in comparisons:
        key = _key(comparison)
        if key not in results.ratios.values:
            print(f"{comparison.ours} / {comparison.theirs}: skipped (peer not installed)")
            continue
        ratio = results.ratios.median(key)
        spread = results.ratios.spread(key)
        print(f"{comparison.ours} / {comparison.theirs}: {ratio:.2f}x ({spread})")
        rows.append(_row(scenario, comparison.ours, results, comparison))
        if comparison.target:
            checks.append(
                (f"{scenario}: {comparison.ours} {ratio:.2f}x {comparison.theirs} < 1.0", ratio < 1)
            )
    print()
    return rows, checks


def _key(comparison: Comparison) -> str:
    return f"{comparison.ours} / {comparison.theirs}"


def _row(
    scenario: str, tool: str, results: Results, comparison: Comparison | None = None
) -> dict[str, Any]:
    """A results row (the shared JSON shape); with ``comparison``, its per-round ratios."""
    samples = results.seconds.values[tool]
    row: dict[str, Any] = {
        "scenario": scenario,
        "tool": tool,
        "unit": "s",
        "median": median(samples),
        "min": min(samples),
        "max": max(samples),
        "samples": samples,
        "peak_rss_mib": results.rss.median(tool),
    }
    if comparison is not None:
        ratios = results.ratios.values[_key(comparison)]
        row |= {
            "ratio_to": comparison.theirs,
            "ratio": median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
    return row


def large_scenario(
    tools: Tools, work: Path, size: int, rounds: int
) -> tuple[list[dict[str, Any]], list[tuple[str, bool]]]:
    """One large file: put / add / log_artifact / sha256, then reading it back."""
    source = work / "large.bin"
    make_random_file(source, size)
    sha256_hex = sha256_file(source)  # also warms the page cache

    def artifactstore(results: Results) -> None:
        where = work / "as-large"
        env = new_registry(tools, where)
        settle()
        results.add(AS_PUT, measure([*tools.artifactstore, "put", "bench/large", str(source)],
                                    env=env))  # fmt: skip
        settle()
        destination = where / "out"
        results.add(AS_GET, measure([*tools.artifactstore, "get", "bench/large",
                                     str(destination)], env=env))  # fmt: skip
        check_copy(destination / source.name, sha256_hex)
        remove(where)

    def dvc(results: Results) -> None:
        project = work / "dvc-large"
        dvc = new_dvc_project(tools, project)
        target = project / source.name
        shutil.copyfile(source, target)
        settle()
        results.add(DVC_ADD, measure([*dvc, "add", "-q", source.name], project, DVC_ENV))
        settle()
        remove(target)
        results.add(DVC_CHECKOUT, measure([*dvc, "checkout", "-q"], project, DVC_ENV))
        check_copy(target, sha256_hex)
        remove(project)

    def mlflow(results: Results) -> None:
        where = work / "mlflow-large"
        where.mkdir()
        uri = mlflow_uri(where)
        run = measure([*mlflow_argv(tools), "log", uri, str(source)], env=MLFLOW_ENV)
        results.add(ML_LOG, run)
        settle()
        destination = where / "out"
        get = [*mlflow_argv(tools), "get", uri, run.stdout.strip(), source.name, str(destination)]
        results.add(ML_GET, measure(get, env=MLFLOW_ENV))
        check_copy(destination / source.name, sha256_hex)
        remove(where)

    def sha256(results: Results) -> None:
        results.add(SHA256, measure([sys.executable, "-c", SHA256_CODE, str(source)]))

    def durable_copy(results: Results) -> None:
        target = work / "durable-copy.bin"
        copy = [sys.executable, "-c", DURABLE_COPY_CODE, str(source), str(target)]
        results.add(FLOOR_DURABLE, measure(copy))
        remove(target)

    unsynced = unsynced_step(
        tools, work / "as-large-unsynced", AS_PUT, ["put", "bench/large", str(source)]
    )
    steps = installed(tools, artifactstore=artifactstore, sha256=sha256, unsynced=unsynced,
                      dvc=dvc, mlflow=mlflow, durable_copy=durable_copy)  # fmt: skip
    scenario = f"{size / MIB:,.0f} MiB file"
    results = run_rounds(scenario, steps, rounds)
    remove(source)
    return summarise(
        scenario,
        results,
        [
            Comparison(AS_PUT, DVC_ADD),
            Comparison(AS_PUT, ML_LOG),
            Comparison(AS_PUT, SHA256, target=False),
            Comparison(AS_PUT + NO_FSYNC, DVC_ADD, target=False),
            Comparison(AS_PUT + NO_FSYNC, ML_LOG, target=False),
            Comparison(AS_GET, DVC_CHECKOUT),
            Comparison(AS_GET, ML_GET),
            Comparison(AS_GET, FLOOR_DURABLE, target=False),
        ],
    )


def directory_scenario(
    tools: Tools, work: Path, files: int, rounds: int
) -> tuple[list[dict[str, Any]], list[tuple[str, bool]]]:
    """A directory of small files as one package, again unchanged, then reading it back."""
    data = work / "tree"
    make_tree(data, files)
    settle()

    def artifactstore(results: Results) -> None:
        where = work / "as-dir"
        env = new_registry(tools, where)
        settle()
        put = [*tools.artifactstore, "put", "bench/dir", str(data)]
        results.add(AS_PUT, measure(put, env=env))
        settle()
        results.add(AS_AGAIN, measure(put, env=env))
        settle()
        destination = where / "out"
        results.add(AS_GET, measure([*tools.artifactstore, "get", "bench/dir",
                                     str(destination)], env=env))  # fmt: skip
        check_tree(destination, files)
        remove(where)

    unsynced = unsynced_step(
        tools, work / "as-dir-unsynced", AS_PUT, ["put", "bench/dir", str(data)]
    )

    def dvc(results: Results) -> None:
        project = work / "dvc-dir"
        project.mkdir()
        shutil.copytree(data, project / data.name)
        dvc = new_dvc_project(tools, project)
        settle()
        add = [*dvc, "add", "-q", data.name]
        results.add(DVC_ADD, measure(add, project, DVC_ENV))
        settle()
        results.add(DVC_AGAIN, measure(add, project, DVC_ENV))
        remove(project / data.name)
        results.add(DVC_CHECKOUT, measure([*dvc, "checkout", "-q"], project, DVC_ENV))
        check_tree(project / data.name, files)
        remove(project)

    def mlflow(results: Results) -> None:
        where = work / "mlflow-dir"
        where.mkdir()
        log = [*mlflow_argv(tools), "log", mlflow_uri(where), str(data)]
        run = measure(log, env=MLFLOW_ENV)
        results.add(ML_LOG_DIR, run)
        settle()
        results.add(ML_AGAIN, measure(log, env=MLFLOW_ENV))
        settle()
        destination = where / "out"
        get = [*mlflow_argv(tools), "get", mlflow_uri(where), run.stdout.strip(), data.name,
               str(destination)]  # fmt: skip
        results.add(ML_GET, measure(get, env=MLFLOW_ENV))
        check_tree(destination / data.name, files)
        remove(where)

    def floors(results: Results) -> None:
        for mode, tool in (("copy", FLOOR_COPY), ("layout", FLOOR_LAYOUT)):
            target = work / f"floor-{mode}"
            results.add(tool, measure([sys.executable, "-c", FLOOR_CODE, mode, str(data),
                                       str(target)]))  # fmt: skip
            remove(target)

    steps = installed(tools, artifactstore=artifactstore, unsynced=unsynced, dvc=dvc,
                      mlflow=mlflow, floors=floors)  # fmt: skip
    scenario = f"{files:,} x 1 KiB directory"
    results = run_rounds(scenario, steps, rounds)
    remove(data)
    layout, copy = (results.seconds.values[tool] for tool in (FLOOR_LAYOUT, FLOOR_COPY))
    floor = [a / b for a, b in zip(layout, copy, strict=True)]
    spread = f"{min(floor):.2f}-{max(floor):.2f}"
    print(f"context: layout floor / copy floor {median(floor):.2f}x ({spread})")
    return summarise(
        scenario,
        results,
        [
            Comparison(AS_PUT, DVC_ADD),
            Comparison(AS_PUT, ML_LOG_DIR),
            Comparison(AS_PUT + NO_FSYNC, DVC_ADD, target=False),
            Comparison(AS_PUT + NO_FSYNC, ML_LOG_DIR, target=False),
            Comparison(AS_PUT + NO_FSYNC, FLOOR_LAYOUT, target=False),
            Comparison(AS_AGAIN, DVC_AGAIN),
            Comparison(AS_AGAIN, ML_AGAIN),
            Comparison(AS_GET, DVC_CHECKOUT),
            Comparison(AS_GET, ML_GET),
        ],
    )


def many_scenario(
    tools: Tools, work: Path, outputs: int, rounds: int
) -> tuple[list[dict[str, Any]], list[tuple[str, bool]]]:
    """Many separate small outputs: put-many / one dvc add of all / log_artifact each."""
    data = work / "outputs"
    make_tree(data, outputs)
    names = sorted(path.name for path in data.iterdir())
    spec = work / "spec.jsonl"
    spec.write_text(
        "".join(
            json.dumps({"name": f"bench/out-{index}", "paths": [str(data / name)]}) + "\n"
            for index, name in enumerate(names)
        )
    )
    settle()

    def artifactstore(results: Results) -> None:
        where = work / "as-many"
        env = new_registry(tools, where)
        settle()
        results.add(AS_MANY, measure([*tools.artifactstore, "put-many", str(spec)], env=env))
        remove(where)

    unsynced = unsynced_step(tools, work / "as-many-unsynced", AS_MANY, ["put-many", str(spec)])

    def dvc(results: Results) -> None:
        project = work / "dvc-many"
        shutil.copytree(data, project)
        dvc = new_dvc_project(tools, project)
        settle()
        results.add(DVC_MANY, measure([*dvc, "add", "-q", *names], project, DVC_ENV))
        remove(project)

    def mlflow(results: Results) -> None:
        where = work / "mlflow-many"
        where.mkdir()
        log = [*mlflow_argv(tools), "log", mlflow_uri(where), *(str(data / n) for n in names)]
        results.add(ML_MANY, measure(log, env=MLFLOW_ENV))
        remove(where)

    steps = installed(tools, artifactstore=artifactstore, unsynced=unsynced, dvc=dvc,
                      mlflow=mlflow)  # fmt: skip
    scenario = f"{outputs:,} separate 1 KiB outputs"
    results = run_rounds(scenario, steps, rounds)
    remove(data)
    return summarise(
        scenario,
        results,
        [
            Comparison(AS_MANY, DVC_MANY),
            Comparison(AS_MANY, ML_MANY),
            Comparison(AS_MANY + NO_FSYNC, DVC_MANY, target=False),
            Comparison(AS_MANY + NO_FSYNC, ML_MANY, target=False),
        ],
    )


# ---------------------------------------------------------------------------- data
def make_random_file(path: Path, size: int) -> None:
    with path.open("wb") as file:
        remaining = size
        while remaining:
            count = min(remaining, 16 * MIB)
            file.write(os.urandom(count))
            remaining -= count


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def make_tree(directory: Path, files: int) -> None:
    directory.mkdir()
    for index in range(files):
        (directory / f"f{index:05d}.bin").write_bytes(os.urandom(KIB))


def check_copy(path: Path, sha256_hex: str) -> None:
    """Reading back must have produced the same bytes (checked outside the timed part)."""
    if sha256_file(path) != sha256_hex:
        raise RuntimeError(f"{path} does not hold the bytes that were stored")


def check_tree(directory: Path, files: int) -> None:
    found = sum(1 for path in directory.iterdir() if path.is_file())
    if found != files:
        raise RuntimeError(f"{directory} holds {found} files, expected {files}")


# ---------------------------------------------------------------------------- profile
def profile_commands(tools: Tools, work: Path, files: int, outputs: int) -> None:
    """Each artifact-store command once more under cProfile (whole process, imports too)."""
    if len(tools.artifactstore) == 1:  # the installed console script, run by its venv
        script = Path(tools.artifactstore[0])
        python = str(script.parent / "python")
    else:
        script = work / "artifactstore_cli.py"
        script.write_text(
            f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
            "from artifactstore_core.cli import main\nmain()\n"
        )
        python = sys.executable
    data = work / "profile-tree"
    make_tree(data, files)
    small = work / "profile-outputs"
    make_tree(small, outputs)
    spec = work / "profile-spec.jsonl"
    spec.write_text(
        "".join(
            json.dumps({"name": f"bench/out-{i}", "paths": [str(path)]}) + "\n"
            for i, path in enumerate(sorted(small.iterdir()))
        )
    )
    env = new_registry(tools, work / "profile-registry")
    commands = {
        "put DIR": ["put", "bench/dir", str(data)],
        "put DIR again": ["put", "bench/dir", str(data)],
        "get DIR": ["get", "bench/dir", str(work / "profile-out")],
        "put-many": ["put-many", str(spec)],
    }
    for title, arguments in commands.items():
        output = work / "profile.out"
        # cwd=work: ``python -m`` puts the working directory first on sys.path, and the
        # checkout's own package must not shadow the installed one.
        profile = [python, "-m", "cProfile", "-o", str(output), str(script), *arguments]
        untimed(profile, cwd=work, env=env)
        print(f"--- cProfile of `artifactstore {' '.join(arguments[:2])} ...` ({title})")
        stats = pstats.Stats(str(output))
        for key in ("cumulative", "tottime"):
            stats.sort_stats(key).print_stats(20)


# ---------------------------------------------------------------------------- main
def install_peers(work: Path, with_dvc: bool, with_mlflow: bool) -> Tools:
    """The tools: this checkout's CLI and the peers in throw-away virtualenvs."""
    dvc, why = throwaway_tool(work, "dvc", "dvc") if with_dvc else (None, "--no-dvc given")
    print(f"DVC: {peer_version(dvc, '--version') if dvc else 'SKIPPED, ' + why}")
    python, why = (
        throwaway_tool(work, "mlflow-skinny", "python") if with_mlflow else (None, "--no-mlflow")
    )
    if python is not None:
        code = "import mlflow; print(mlflow.__version__)"
        print(f"MLflow: mlflow-skinny {peer_version(python, '-c', code)} (local file store)")
    else:
        print(f"MLflow: SKIPPED, {why}")
    artifactstore, why = installed_cli(work)
    if artifactstore is None:
        artifactstore = library_cli()
        print(f"artifactstore: this checkout with the project's virtualenv ({why})")
    else:
        print(f"artifactstore: this checkout installed as a user would ({artifactstore[0]})")
    print(flush=True)
    return Tools(artifactstore, dvc, python)


def installed_cli(work: Path) -> tuple[list[str] | None, str]:
    """The ``artifactstore`` command of this checkout installed without extras into a new
    byte-compiled virtualenv (dependencies at the lock file's versions), as a user's
    ``pip install artifact-store`` has it; or None and why not.

    The project's own virtualenv holds every extra and the development tools; importing
    the package there loads modules a user's install does not have (boto3 through
    securesystemslib's AWS signer, for one), which would bill their start-up to us.
    """
    uv = shutil.which("uv")
    if uv is None:
        return None, "uv is not on PATH"
    venv = work / "venv-artifactstore"
    python = str(venv / "bin" / "python")
    requirements = work / "artifactstore-requirements.txt"
    install = [uv, "pip", "install", "-q", "--compile-bytecode", "--python", python]
    for argv in (
        [uv, "export", "-q", "--locked", "--no-dev", "--no-emit-project", "--no-hashes",
         "-o", str(requirements)],
        [uv, "venv", "-q", str(venv)],
        [*install, "-r", str(requirements)],
        [*install, "--no-deps", str(REPO)],
    ):  # fmt: skip
        done = subprocess.run(argv, cwd=REPO, capture_output=True, check=False, timeout=900)
        if done.returncode:
            return None, f"{' '.join(argv[:3])} failed: {done.stderr.decode().strip()[-300:]}"
    return [str(venv / "bin" / "artifactstore")], ""


def peer_version(executable: Path, *arguments: str) -> str:
    version = untimed([str(executable), *arguments]).strip()
    return f"{version} (throw-away virtualenv {executable.parent.parent})"


def main() -> int:
    args = parser(__doc__.splitlines()[0])
    args.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    args.add_argument("--size-mib", type=int, help="large file size (default 1024; quick 32)")
    args.add_argument("--files", type=int, help="files in the directory (default 10000; quick 200)")
    args.add_argument("--outputs", type=int, help="separate outputs (default 1000; quick 50)")
    args.add_argument("--scenario", choices=["all", "large", "directory", "many"], default="all")
    args.add_argument("--no-dvc", action="store_true", help="skip DVC")
    args.add_argument("--no-mlflow", action="store_true", help="skip MLflow")
    options = args.parse_args()
    quick = options.quick
    rounds = options.rounds or (1 if quick else 3)
    size = (options.size_mib or (32 if quick else 1024)) * MIB
    files = options.files or (200 if quick else 10_000)
    outputs = options.outputs or (50 if quick else 1000)
    root = temp_root(options.tmpdir)
    header(
        "artifact-store beside DVC and MLflow (whole-process wall time and peak RSS)",
        quick,
        scenarios=f"{options.scenario}: {size / MIB:,.0f} MiB file; {files:,} x 1 KiB "
        f"directory; {outputs:,} separate 1 KiB outputs",
        rounds=f"{rounds}, tools interleaved in a rotating order, `sync` between steps",
        artifactstore="this checkout's CLI, installed without extras into a throw-away "
        "virtualenv (byte-compiled), SQLite + local blob store, fsync on (the default); "
        "`migrate` not timed",
        peers="DVC and mlflow-skinny in throw-away virtualenvs; neither fsyncs what it stores",
        temp=str(root),
    )
    rows: list[dict[str, Any]] = []
    checks: list[tuple[str, bool]] = []
    with temp_dir(root, "bench-peers-") as work:
        tools = install_peers(work, not options.no_dvc, not options.no_mlflow)
        scenarios: list[Callable[[], tuple[list[dict[str, Any]], list[tuple[str, bool]]]]] = []
        if options.scenario in ("all", "large"):
            scenarios.append(partial(large_scenario, tools, work, size, rounds))
        if options.scenario in ("all", "directory"):
            scenarios.append(partial(directory_scenario, tools, work, files, rounds))
        if options.scenario in ("all", "many"):
            scenarios.append(partial(many_scenario, tools, work, outputs, rounds))
        for scenario in scenarios:
            seconds, (scenario_rows, scenario_checks) = timed(scenario)
            rows += scenario_rows
            checks += scenario_checks
            print(f"(scenario took {seconds:.0f} s)\n", flush=True)
        if options.profile:
            profile_commands(tools, work, files, outputs)
    write_results(Path(__file__).stem, rows, checks, quick)
    return verdict(checks, quick)


if __name__ == "__main__":
    raise SystemExit(main())

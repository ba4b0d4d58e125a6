"""A ``get`` killed at any moment loses nothing and leaves nothing behind.

A forked child process exports a 50-file package from a SQLite registry and is SIGKILLed, at a
random delay or right after its k-th file-system step (``os.rename``/``link``/``mkdir``). Then:
a new destination is absent or complete; an existing one (``force``) is, once
``recover`` ran (as every export does first), unchanged or complete, with files the
package does not name untouched; after the next successful export no staging directory
is left. The short form runs in ``make test``; ``ARTIFACTSTORE_RELIABILITY_LONG=1`` runs
the long form (hundreds of trials) and prints the figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from artifactstore_core.export import STAGING, recover
from artifactstore_core.store import ArtifactStore

LONG = os.environ.get("ARTIFACTSTORE_RELIABILITY_LONG") == "1"
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600 if LONG else 300)]
RANDOM_TRIALS = 100 if LONG else 2
CLI_TRIALS = 10 if LONG else 1
FILES = 50


@dataclass(frozen=True)
class Registry:
    database_url: str
    storage: Path
    versions: dict[str, dict[str, bytes]]  # reference -> expected files


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Two versions of a 50-file package (about 12 MiB each, five directories)."""
    root = tmp_path_factory.mktemp("crash-get")
    url = f"sqlite:///{root / 'registry.db'}"
    rng = random.Random(11)
    versions: dict[str, dict[str, bytes]] = {}
    with ArtifactStore.open(url, str(root / "blobs")) as store:
        for version in (1, 2):
            files = {
                f"part-{i % 5}/file-{i:02d}.bin": rng.randbytes(rng.randint(1, 480) * 1024)
                for i in range(FILES)
            }
            files["extra-in-v2.txt" if version == 2 else "only-in-v1.txt"] = b"x"
            store.put("crash/pkg", files)
            versions[f"crash/pkg@{version}"] = files
    return Registry(url, root / "blobs", versions)


class Driver:
    """One export in a forked child process (the registry opened afresh there), started
    once the child is ready, then killed or left to finish. ``crash_at=k`` makes the
    child SIGKILL itself right after its k-th ``os.rename``/``link``/``mkdir``."""

    def __init__(
        self,
        registry: Registry,
        reference: str,
        destination: Path,
        *,
        force: bool,
        crash_at: int | None = None,
    ) -> None:
        go_read, self.go = os.pipe()
        self.results, result_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            code = 1
            try:
                os.close(self.go)
                os.close(self.results)
                with ArtifactStore.open(
                    registry.database_url, str(registry.storage), migrate=False
                ) as store:
                    package = store.describe(reference)
                    os.write(result_write, b"ready\n")
                    os.read(go_read, 1)
                    steps = _count_steps(crash_at)
                    store.export(package, destination, force=force, purpose="crash test")
                    os.write(result_write, json.dumps({"steps": steps[0]}).encode())
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(go_read)
        os.close(result_write)
        assert os.read(self.results, 6) == b"ready\n"

    def start(self) -> None:
        os.write(self.go, b"g")
        os.close(self.go)

    def kill_after(self, delay: float) -> bool:
        """SIGKILL after ``delay`` seconds; whether the export had finished first."""
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        return self.finish() == 0

    def finish(self) -> int:
        """The child's exit code (``-9`` if killed)."""
        status = os.waitpid(self.pid, 0)[1]
        code = os.waitstatus_to_exitcode(status)
        assert code in (0, -signal.SIGKILL), f"the export failed: {code}"
        os.close(self.results)
        return code

    def run(self) -> dict[str, int]:
        self.start()
        with os.fdopen(os.dup(self.results), "rb") as stream:
            output = stream.read()
        assert self.finish() == 0
        result: dict[str, int] = json.loads(output)
        return result


def _count_steps(crash_at: int | None) -> list[int]:
    """Count this process's ``os.rename``/``link``/``mkdir`` calls from now on, and SIGKILL
    it right after call ``crash_at``."""
    steps = [0]
    for name in ("rename", "link", "mkdir"):
        original = getattr(os, name)

        def step(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            result = _original(*args, **kwargs)
            steps[0] += 1
            if steps[0] == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(os, name, step)
    return steps


def snapshot(root: Path) -> dict[str, bytes] | None:
    """The files under ``root`` (staging directories excluded), or ``None`` if absent."""
    if not root.exists():
        return None
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and STAGING not in p.relative_to(root).as_posix()
    }


def leftovers(destination: Path) -> list[str]:
    places = [destination.parent, destination] if destination.is_dir() else [destination.parent]
    return sorted(p.name for d in places for p in d.iterdir() if STAGING in p.name)


@dataclass
class Tally:
    """What the trials of one test saw; printed (``pytest -s``) as the run's figures."""

    title: str
    counts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        figures = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        print(f"\n[crash-get] {self.title}: {figures}; wall time {elapsed:.1f} s")


def timed_export(registry: Registry, reference: str, destination: Path, force: bool) -> float:
    """Seconds one uninterrupted export takes once its process is ready."""
    driver = Driver(registry, reference, destination, force=force)
    started = time.monotonic()
    driver.run()
    return time.monotonic() - started


def next_get_cleans_up(registry: Registry, reference: str, dest: Path, tally: Tally) -> None:
    """The next export completes and leaves no staging directory behind."""
    Driver(registry, reference, dest, force=dest.exists()).run()
    dangling = leftovers(dest)
    tally.counts["dangling"] += bool(dangling)
    assert dangling == [], "the next get removes what the killed one left"


def test_killed_get_into_a_new_destination(registry: Registry, tmp_path: Path) -> None:
    reference = "crash/pkg@1"
    expected = registry.versions[reference]
    dest = tmp_path / "out" / "restore"
    duration = timed_export(registry, reference, dest, force=False)
    rng = random.Random(5)
    tally = Tally(f"new destination, random kills (export {duration:.2f} s)")
    for _ in range(RANDOM_TRIALS):
        shutil.rmtree(dest)
        driver = Driver(registry, reference, dest, force=False)
        driver.start()
        finished = driver.kill_after(rng.uniform(0, duration * 1.1))
        state = snapshot(dest)
        tally.counts["trials"] += 1
        tally.counts["finished" if finished else "killed"] += 1
        tally.counts["absent" if state is None else "complete"] += 1
        tally.counts["staging_left_by_kill"] += bool(leftovers(dest))
        tally.counts["lost"] += state not in (None, expected)
        assert state in (None, expected), "a new destination is absent or complete"
        next_get_cleans_up(registry, reference, dest, tally)
        assert snapshot(dest) == expected
    tally.report()


def alternate_versions(
    registry: Registry, dest: Path, kills: Sequence[tuple[float | None, int | None]], tally: Tally
) -> None:
    """For each ``(delay, crash_at)``: kill a forced export over the complete other
    version; check the state before and after ``recover`` and after the next export."""
    mine = b"a file of the user's, in no package"
    (dest / "mine.txt").write_bytes(mine)
    current = "crash/pkg@1"
    for delay, crash_at in kills:
        wanted = "crash/pkg@2" if current == "crash/pkg@1" else "crash/pkg@1"
        before = snapshot(dest)
        complete = {**(before or {}), **registry.versions[wanted]}
        driver = Driver(registry, wanted, dest, force=True, crash_at=crash_at)
        driver.start()
        finished = driver.finish() == 0 if delay is None else driver.kill_after(delay)
        tally.counts["trials"] += 1
        tally.counts["finished" if finished else "killed"] += 1
        tally.counts["mixed_before_recover"] += snapshot(dest) not in (before, complete)
        recover(dest)
        after = snapshot(dest)
        lost = after not in (before, complete) or (dest / "mine.txt").read_bytes() != mine
        tally.counts["lost"] += lost
        assert not lost, "after recover: unchanged or complete, the user's file intact"
        tally.counts["unchanged" if after == before else "complete"] += 1
        next_get_cleans_up(registry, wanted, dest, tally)
        assert snapshot(dest) == complete
        current = wanted


def test_killed_forced_get_over_an_existing_destination(registry: Registry, tmp_path: Path) -> None:
    dest = tmp_path / "restore"
    duration = timed_export(registry, "crash/pkg@1", dest, force=False)
    rng = random.Random(7)
    tally = Tally(f"forced over an existing destination, random kills (export {duration:.2f} s)")
    kills = [(rng.uniform(0, duration * 1.1), None) for _ in range(RANDOM_TRIALS)]
    alternate_versions(registry, dest, kills, tally)
    tally.report()


def test_get_killed_at_every_file_system_step(registry: Registry, tmp_path: Path) -> None:
    dest = tmp_path / "restore"
    timed_export(registry, "crash/pkg@1", dest, force=False)
    for reference in ("crash/pkg@2", "crash/pkg@1"):  # then both versions' files are there
        steps = Driver(registry, reference, dest, force=True).run()["steps"]
    assert steps > 2 * FILES  # every file moved in (and the replaced ones kept aside)
    points = range(1, steps + 1) if LONG else [1, steps // 2, steps - FILES, steps - 1, steps]
    tally = Tally(f"forced over an existing destination, killed at step k of {steps}")
    alternate_versions(registry, dest, [(None, k) for k in points], tally)
    assert tally.counts["killed"] == len(points)
    tally.report()


def test_killed_cli_get(registry: Registry, tmp_path: Path) -> None:
    """``artifactstore get`` itself, killed while its staging directory exists."""
    script = shutil.which("artifactstore", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {
        **os.environ,
        "ARTIFACTSTORE_DATABASE_URL": registry.database_url,
        "ARTIFACTSTORE_STORAGE_URL": str(registry.storage),
    }
    expected = registry.versions["crash/pkg@2"]
    dest = tmp_path / "restore"
    rng = random.Random(3)
    tally = Tally("artifactstore get, killed while staging")
    for _ in range(CLI_TRIALS):
        get = subprocess.Popen([script, "get", "crash/pkg@2", str(dest)], env=env)
        deadline = time.monotonic() + 60
        while not leftovers(dest) and get.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.3))
        get.kill()
        tally.counts["killed" if get.wait() == -signal.SIGKILL else "finished"] += 1
        state = snapshot(dest)
        tally.counts["lost"] += state not in (None, expected)
        assert state in (None, expected)
        subprocess.run([script, "get", "crash/pkg@2", str(dest), "--force"], env=env, check=True)
        assert snapshot(dest) == expected and leftovers(dest) == []
        shutil.rmtree(dest)
    assert tally.counts["killed"] > 0
    tally.report()

"""Crash harness: run a registry operation in a child process, SIGKILL it, check invariants.

The child is forked from the test process (which has already imported the library), so a
trial costs the operation, not an interpreter start-up: on the shared 2-core machines a
``python -c`` start-up took 20 s of wall time under load. The child opens its own
registry (no connection crosses the fork), waits for "go", runs the operation and writes
an acknowledgement line (JSON) to a file, unbuffered, after each result it returns.

Kill points are either a random delay spread over the operation's measured duration, or
the N-th call of a chosen system call (``strace -e inject=SYSCALL:signal=SIGKILL:when=N``
attached to the child), which gives deterministic kill points.

After each kill the registry must satisfy (``check``):
- ``log verify`` passes and ``views check`` finds no difference;
- nothing is lost: every active or held package has all its blobs present and verifying
  in its tier, and every acknowledged result is still there;
- nothing dangles: after one sweep with grace 0, every file under a blob directory is a
  blob the registry records in that tier (no orphans, no staging leftovers), and every
  recorded copy is needed by an active or held package in that tier;
- the operation run again to completion succeeds, and the checks above hold again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from artifactstore_core import ArtifactStore, Settings
from artifactstore_core.config import create_engine
from artifactstore_core.errors import ArtifactStoreError, NotFoundError
from artifactstore_core.schema import storage_locations

TIERS = ("hot", "cold", "archive")
STRACE = shutil.which("strace")
# System calls at which a kill is injected: blob writes and renames, directory and blob
# fsyncs (or a batch's syncfs), unlinks by the sweep and tier moves, SQLite's writes, syncs.
SYSCALLS = ("fsync", "fdatasync", "syncfs", "rename", "unlink", "pwrite64", "copy_file_range")


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Registry:
    """A registry on disk: one directory per tier and a SQLite file, or a PostgreSQL
    database (``database_url``, copied through the maintenance database ``admin_url``)."""

    root: Path
    database_url: str = ""
    admin_url: str = ""

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.root / 'registry.db'}"

    @property
    def backend(self) -> str:
        return "postgresql" if self.database_url.startswith("postgresql") else "sqlite"

    def settings(self, grace_seconds: int = 3600) -> Settings:
        return Settings(
            database_url=self.url,
            storage_url=str(self.root / "hot"),
            tier_cold_url=str(self.root / "cold"),
            tier_archive_url=str(self.root / "archive"),
            gc_grace_seconds=grace_seconds,
        )

    def open(self, *, grace_seconds: int = 3600, **kwargs: Any) -> ArtifactStore:
        return ArtifactStore.from_settings(self.settings(grace_seconds), **kwargs)

    def copy_to(self, root: Path) -> Registry:
        """A copy of this registry (no connection to it may be open) under ``root``."""
        shutil.copytree(self.root, root)
        if self.backend == "sqlite":
            return Registry(root)
        source = sa.make_url(self.database_url)
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"')
        url = source.set(database=name).render_as_string(hide_password=False)
        return Registry(root, url, self.admin_url)

    def discard(self) -> None:
        """Remove this copy: its directories and its database."""
        shutil.rmtree(self.root)
        if self.backend == "postgresql":
            name = sa.make_url(self.database_url).database
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(statement)
        finally:
            admin.dispose()


@contextlib.contextmanager
def opened(registry: Registry, **kwargs: Any) -> Iterator[ArtifactStore]:
    store = registry.open(**kwargs)
    try:
        yield store
    finally:
        store.close()


# --------------------------------------------------------------------------- the child
Operation = Callable[[ArtifactStore, Callable[[dict[str, Any]], None]], None]


@dataclass(frozen=True)
class Scenario:
    """An operation to crash: ``setup`` builds the template registry once; ``run`` is the
    operation (it calls ``ack`` with each result it returned); ``check_ack`` says what is
    wrong with an acknowledged result in the registry (``None``: nothing)."""

    name: str
    setup: Callable[[Registry], None]
    run: Operation
    check_ack: Callable[[ArtifactStore, dict[str, Any]], str | None]
    grace_seconds: int = 3600


@dataclass
class Child:
    """A forked child waiting for "go" (``start``) before running its operation."""

    pid: int
    go: int
    ack_path: Path
    status: int | None = None

    def start(self) -> None:
        os.write(self.go, b"g")
        os.close(self.go)

    def wait(self) -> int:
        """The child's exit status: ``0`` done, ``-9`` killed, other values failed."""
        _, status = os.waitpid(self.pid, 0)
        self.status = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return self.status

    def acks(self) -> list[dict[str, Any]]:
        """Acknowledged results; a torn last line (killed mid-write) is not an ack."""
        lines = self.ack_path.read_text().splitlines() if self.ack_path.exists() else []
        result = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                result.append(json.loads(line))
        return result


def fork_child(
    run: Operation, registry: Registry, ack_path: Path, *, grace_seconds: int = 3600
) -> Child:
    """Fork a child that runs ``run`` on ``registry`` once told to start.

    The parent must hold no open database connection or thread of the registry.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        status = 3
        try:
            os.close(write_end)
            os.read(read_end, 1)
            fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

            def ack(result: dict[str, Any]) -> None:
                os.write(fd, (json.dumps(result) + "\n").encode())

            with opened(registry, grace_seconds=grace_seconds) as store:
                run(store, ack)
            status = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                os.write(fd, (json.dumps({"error": repr(exc)}) + "\n").encode())
        finally:
            os._exit(status)
    os.close(read_end)
    return Child(pid, write_end, ack_path)


@dataclass(frozen=True)
class Kill:
    """Where to kill: after ``delay`` seconds, or at call ``when`` of ``syscall``."""

    delay: float | None = None
    syscall: str | None = None
    when: int = 0

    def __str__(self) -> str:
        if self.syscall:
            return f"{self.syscall}#{self.when}"
        return f"after {self.delay:.3f}s" if self.delay is not None else "none"


def run_child(scenario: Scenario, registry: Registry, ack_path: Path, kill: Kill) -> Child:
    """Run the operation once in a child, killed as ``kill`` says; returns it, waited for."""
    child = fork_child(scenario.run, registry, ack_path, grace_seconds=scenario.grace_seconds)
    if kill.syscall:
        try:
            tracer = _attach_strace(child.pid, kill.syscall, kill.when)
        except BaseException:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            raise
        child.start()
        child.wait()
        tracer.communicate(timeout=60)
        return child
    child.start()
    if kill.delay is not None:
        time.sleep(kill.delay)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return child


def _attach_strace(pid: int, syscall: str, when: int) -> subprocess.Popen[bytes]:
    """``strace`` attached to ``pid`` (and threads it starts), SIGKILL at call ``when``."""
    assert STRACE is not None
    tracer = subprocess.Popen(
        [STRACE, "-f", "-o", "/dev/null", "-e", f"trace={syscall}",
         "-e", f"inject={syscall}:signal=SIGKILL:when={when}", "-p", str(pid)],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert tracer.stderr is not None
    line = tracer.stderr.readline()  # "strace: Process N attached"
    if b"attached" not in line:
        raise RuntimeError(f"strace did not attach to {pid}: {line!r}")
    return tracer


def count_syscalls(scenario: Scenario, registry: Registry, ack_path: Path) -> dict[str, int]:
    """Calls of each of ``SYSCALLS`` in one full run of the operation (``strace -c``)."""
    assert STRACE is not None
    child = fork_child(scenario.run, registry, ack_path, grace_seconds=scenario.grace_seconds)
    tracer = subprocess.Popen(
        [STRACE, "-f", "-c", "-e", f"trace={','.join(SYSCALLS)}", "-p", str(child.pid)],
        stderr=subprocess.PIPE,
    )
    assert tracer.stderr is not None
    tracer.stderr.readline()
    child.start()
    status = child.wait()
    summary = tracer.communicate(timeout=60)[1].decode()
    if status != 0:
        raise RuntimeError(f"{scenario.name}: the traced run failed: {child.acks()}")
    counts = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in SYSCALLS and parts[3].isdigit():
            counts[parts[-1]] = int(parts[3])
    return counts


# --------------------------------------------------------------------------- checks
@dataclass
class Findings:
    """What the checks found after one kill."""

    lost: list[str] = field(default_factory=list)
    dangling: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.lost or self.dangling or self.broken)

    def extend(self, other: Findings) -> None:
        self.lost += other.lost
        self.dangling += other.dangling
        self.broken += other.broken


def _blob_problem(store: ArtifactStore, tier: str, blob: Any) -> str | None:
    backend = store.tiers[tier]
    try:
        with backend.open(blob) as reader:
            while reader.read(4 * 1024 * 1024):
                pass
    except NotFoundError:
        return "missing"
    except ArtifactStoreError as exc:
        return f"corrupt ({type(exc).__name__})"
    return None


def lost_packages(store: ArtifactStore) -> list[str]:
    """Active or held packages with a blob missing or corrupt in a tier it is kept in."""
    lost = []
    for package in store.list_packages():
        if package.status != "active" and not package.on_hold:
            continue
        tiers = [package.retrieval_tier]
        if package.retrieval_tier == "archive" and package.restore_status == "restored":
            tiers.append("hot")
        for tier in tiers:
            for entry in package.files:
                problem = _blob_problem(store, tier, entry.blob)
                if problem:
                    lost.append(f"{package.reference} {entry.path} in {tier}: {problem}")
    return lost


def integrity(store: ArtifactStore) -> list[str]:
    """``log verify``, ``views check`` and ``verify`` (of every active package) problems."""
    broken = []
    try:
        store.verify_log()
    except ArtifactStoreError as exc:
        broken.append(f"log verify: {exc}")
    broken += [f"views check: {d}" for d in store.check_views()]
    broken += [f"verify: {p.content_address} {p.detail} (for {p.packages[:3]})"
               for p in store.verify().problems]  # fmt: skip
    return broken


def dangling_files(store: ArtifactStore, registry: Registry) -> list[str]:
    """Files under a tier directory that are not a blob the registry records there."""
    with store.engine.connect() as conn:
        recorded = conn.execute(
            sa.select(storage_locations.c.backend, storage_locations.c.content_address)
        ).all()
    expected = {
        str(store.tiers[tier].path(_digest(address)))
        for tier, address in recorded
        if tier in store.tiers
    }
    found = []
    for tier in TIERS:
        for path in sorted((registry.root / tier).rglob("*")):
            if path.is_file() and str(path) not in expected:
                found.append(f"{tier}: {path.relative_to(registry.root / tier)}")
    return found


def unneeded_copies(store: ArtifactStore) -> list[str]:
    """Recorded copies in a tier where no active or held package keeps them."""
    needed: set[tuple[str, str]] = set()
    for package in store.list_packages():
        if package.status != "active" and not package.on_hold:
            continue
        tiers = {package.retrieval_tier}
        if package.retrieval_tier == "archive" and package.restore_status == "restored":
            tiers.add("hot")
        needed |= {(tier, e.blob.content_address) for tier in tiers for e in package.files}
    with store.engine.connect() as conn:
        recorded = conn.execute(
            sa.select(storage_locations.c.backend, storage_locations.c.content_address)
        ).all()
    return [f"{tier}: {address} (recorded, needed by no package there)"
            for tier, address in recorded if (tier, address) not in needed]  # fmt: skip


def _digest(address: str) -> Any:
    from artifactstore_core.hashing import Digest

    return Digest.parse(address)


def check(scenario: Scenario, registry: Registry, acks: list[dict[str, Any]]) -> Findings:
    """All invariants on ``registry`` after a kill (see the module docstring)."""
    findings = Findings()
    with opened(registry, migrate=False) as store:
        findings.broken += integrity(store)
        findings.lost += lost_packages(store)
        for item in acks:
            if "error" in item:
                continue
            problem = scenario.check_ack(store, item)
            if problem:
                findings.lost.append(f"acknowledged {item}: {problem}")
        store.sweep(grace=dt.timedelta(0))
        findings.dangling += dangling_files(store, registry) + unneeded_copies(store)
        findings.lost += [f"after a sweep: {p}" for p in lost_packages(store)]
        findings.broken += integrity(store)
    return findings


# --------------------------------------------------------------------------- trials
@dataclass
class Summary:
    """Figures of a series of crash trials of one scenario."""

    scenario: str
    backend: str
    seed: int
    trials: int = 0
    kills: int = 0
    failed: list[str] = field(default_factory=list)
    lost: int = 0
    dangling: int = 0
    seconds: float = 0.0
    duration: float = 0.0

    def row(self) -> str:
        return (
            f"{self.scenario} | {self.backend} | {self.trials} | {self.kills} | "
            f"{len(self.failed)} | {self.lost} | {self.dangling} | {self.seconds:.0f} s"
        )


def run_trials(
    scenario: Scenario,
    template: Registry,
    workdir: Path,
    *,
    trials: int,
    seed: int,
    syscall_share: float = 0.34,
) -> Summary:
    """``trials`` crash trials of ``scenario``, each on a copy of ``template`` (set up
    here); the seed reproduces every kill point."""
    rng = random.Random(seed)
    started = time.monotonic()
    template.root.mkdir(parents=True)
    scenario.setup(template)
    summary = Summary(scenario.name, template.backend, seed)

    # Calibrate: how long the operation takes, and how often it makes each system call.
    calibration = template.copy_to(workdir / "calibration")
    begin = time.monotonic()
    child = run_child(scenario, calibration, workdir / "calibration.ack", Kill())
    summary.duration = time.monotonic() - begin
    if child.status != 0:
        raise RuntimeError(f"{scenario.name}: the operation fails uncrashed: {child.acks()}")
    counts: dict[str, int] = {}
    if STRACE and syscall_share > 0:
        counted = template.copy_to(workdir / "count")
        counts = count_syscalls(scenario, counted, workdir / "c.ack")
        counts = {name: n for name, n in counts.items() if n > 0}
        counted.discard()
    calibration.discard()

    for trial in range(trials):
        if counts and rng.random() < syscall_share:
            name = rng.choice(sorted(counts))
            kill = Kill(syscall=name, when=rng.randint(1, counts[name]))
        else:
            kill = Kill(delay=rng.uniform(0, summary.duration))
        root = workdir / f"trial-{trial}"
        registry = template.copy_to(root)
        child = run_child(scenario, registry, root / "op.ack", kill)
        status = child.status
        summary.trials += 1
        summary.kills += status == -signal.SIGKILL
        findings = Findings()
        if status not in (0, -signal.SIGKILL):
            findings.broken.append(f"operation failed with status {status}: {child.acks()}")
        acks = child.acks()
        findings.extend(check(scenario, registry, acks))
        # Run again to completion: it must succeed and leave everything intact.
        again = run_child(scenario, registry, root / "rerun.ack", Kill())
        if again.status != 0:
            findings.broken.append(f"re-run failed: {again.acks()}")
        findings.extend(check(scenario, registry, acks + again.acks()))
        if findings:
            summary.lost += len(findings.lost)
            summary.dangling += len(findings.dangling)
            summary.failed.append(
                f"trial {trial} (seed {seed}, kill {kill}, status {status}): "
                f"lost={findings.lost[:5]} dangling={findings.dangling[:5]} "
                f"broken={findings.broken[:5]}"
            )
        else:
            registry.discard()
    summary.seconds = time.monotonic() - started
    return summary

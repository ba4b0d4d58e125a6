"""Concurrency: writers, a grace-0 sweeper and readers at once, on SQLite and PostgreSQL.

Writer processes put (and put-many) packages drawn from a small pool of contents, so
that blobs are shared; most get an expiry a fraction of a second away, so that the
sweeper (grace 0, in a loop) expires them, deletes their blobs and the writers store the
same bytes again while it runs. Readers read and verify acknowledged packages meanwhile.
Afterwards every acknowledged package is either expired by policy (expired, or due) or
intact, the log verifies, the views match a replay, and one sweep leaves nothing behind.
``ARTIFACTSTORE_RELIABILITY_LONG=1`` runs for ``ARTIFACTSTORE_RELIABILITY_SECONDS``
(default 120) instead of a few seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from artifactstore_core import ArtifactStore, PutRequest
from artifactstore_core.domain import events as ev
from artifactstore_core.errors import ArtifactStoreError, ConflictError, PackageExpiredError
from tests.reliability._harness import (
    Child,
    Registry,
    dangling_files,
    fork_child,
    integrity,
    opened,
    unneeded_copies,
)
from tests.reliability.conftest import long_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(0 if long_run() else 600)]

SEED = int(os.environ.get("ARTIFACTSTORE_RELIABILITY_SEED", "20261201"))
SECONDS = float(os.environ.get("ARTIFACTSTORE_RELIABILITY_SECONDS", "120")) if long_run() else 8
WRITERS, READERS = 3, 1
POOL = [random.Random(f"pool-{i}").randbytes(2048 + 131 * i) for i in range(10)]
Ack = Callable[[dict[str, Any]], None]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def writer(index: int, stop: Path) -> Callable[[ArtifactStore, Ack], None]:
    """Puts packages of pooled contents; 70% of them get an expiry under a second away."""

    def run(store: ArtifactStore, ack: Ack) -> None:
        rng = random.Random(SEED * 100 + index)
        serial = 0
        while not stop.exists():
            requests = []
            for _ in range(rng.choice((1, 1, 1, 5))):
                serial += 1
                files = {
                    "a.bin": rng.choice(POOL),
                    "b.bin": rng.choice(POOL),
                    "own.txt": f"writer {index} package {serial}\n".encode(),
                }
                requests.append(PutRequest(f"conc/w{index}-{serial}", files, "report",
                                           retention_class="transient"))  # fmt: skip
            try:
                packages = store.put_many(requests)
            except ConflictError as exc:
                ack({"conflict": str(exc)})
                continue
            except Exception as exc:
                ack({"unexpected": f"put: {exc!r}"})
                continue
            for package in packages:
                ack({"package": str(package.id)})
                if rng.random() < 0.7:
                    soon = _now() + dt.timedelta(seconds=rng.uniform(0.05, 1.0))
                    try:
                        store.set_retention(package.id, expires_at=soon, override=True,
                                            reason="reliability: expire soon")  # fmt: skip
                    except Exception as exc:
                        ack({"unexpected": f"set_retention: {exc!r}"})

    return run


def sweeper(stop: Path) -> Callable[[ArtifactStore, Ack], None]:
    """Sweeps in a loop with grace 0."""

    def run(store: ArtifactStore, ack: Ack) -> None:
        while not stop.exists():
            try:
                result = store.sweep(grace=dt.timedelta(0))
            except Exception as exc:
                ack({"unexpected": f"sweep: {exc!r}"})
                continue
            ack({"sweep": len(result.expired), "deleted": len(result.deleted)})

    return run


def _acked(ack_files: list[Path]) -> list[str]:
    ids = []
    for path in ack_files:
        if path.exists():
            ids += [line.split('"')[3] for line in path.read_text().splitlines()
                    if line.startswith('{"package"')]  # fmt: skip
    return ids


def _damage(store: ArtifactStore, package_id: str) -> str | None:
    """What is wrong with an acknowledged package that is neither expired nor due."""
    package = store.describe(package_id)
    if package.status == "expired" or (package.expires_at and package.expires_at <= _now()):
        return None
    result = store.verify(package_id)
    if result.ok:
        return None
    again = store.describe(package_id)  # expired while it was verified: by policy
    if again.status == "expired" or (again.expires_at and again.expires_at <= _now()):
        return None
    return f"{again.reference} {package_id}: {[(p.problem, p.detail) for p in result.problems]}"


def reader(index: int, stop: Path, ack_files: list[Path]) -> Callable[[ArtifactStore, Ack], None]:
    """Reads and verifies acknowledged packages; reports those damaged while live."""

    def run(store: ArtifactStore, ack: Ack) -> None:
        rng = random.Random(SEED * 1000 + index)
        while not stop.exists():
            ids = _acked(ack_files)
            if not ids:
                time.sleep(0.05)
                continue
            package_id = rng.choice(ids)
            try:
                store.read_bytes(package_id, "own.txt", purpose="reliability")
                problem = _damage(store, package_id)
            except PackageExpiredError:
                continue
            except ArtifactStoreError as exc:
                problem = _damage(store, package_id) and f"read: {exc}"
            except Exception as exc:
                problem = f"unexpected: {exc!r}"
            ack({"read": package_id, "problem": problem})

    return run


def _lines(path: Path, key: str) -> list[str]:
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        item = json.loads(line)
        if item.get(key):
            found.append(str(item[key]))
    return found


def test_writers_sweeper_and_readers_lose_nothing(database_url: str, tmp_path: Path) -> None:
    registry = Registry(tmp_path, database_url)
    with opened(registry):  # migrate before the workers start
        pass
    stop = tmp_path / "stop"
    writer_acks = [tmp_path / f"writer-{i}.ack" for i in range(WRITERS)]
    workers: list[Child] = [
        fork_child(writer(i, stop), registry, writer_acks[i]) for i in range(WRITERS)
    ]
    workers.append(fork_child(sweeper(stop), registry, tmp_path / "sweeper.ack", grace_seconds=0))
    workers += [
        fork_child(reader(i, stop, writer_acks), registry, tmp_path / f"reader-{i}.ack")
        for i in range(READERS)
    ]
    for child in workers:
        child.start()
    time.sleep(SECONDS)
    stop.touch()
    statuses = [child.wait() for child in workers]

    ack_files = sorted(tmp_path.glob("*.ack"))
    unexpected = [f"{p.name}: {u}" for p in ack_files for u in _lines(p, "unexpected")]
    unexpected += [f"{p.name}: {u}" for p in ack_files for u in _lines(p, "error")]
    read_problems = [u for p in ack_files for u in _lines(p, "problem")]
    acked = _acked(writer_acks)
    with opened(registry, migrate=False) as store:
        lost = [d for d in (_damage(store, i) for i in acked) if d]
        broken = integrity(store)
        purged = sum(isinstance(e.event, ev.BlobPurged) for e in store.events())
        store.sweep(grace=dt.timedelta(0))
        dangling = dangling_files(store, registry) + unneeded_copies(store)
        broken += integrity(store)
    reads = sum(len(_lines(p, "read")) for p in ack_files if p.name.startswith("reader"))
    conflicts = sum(len(_lines(p, "conflict")) for p in writer_acks)
    print(
        f"\nconcurrency {registry.url.split(':')[0]}: {SECONDS:.0f} s, {len(acked)} packages "
        f"acknowledged, {conflicts} conflicts, {purged} blobs purged, {reads} reads, "
        f"lost {len(lost)}, damaged while read {len(read_problems)}, "
        f"unexpected errors {len(unexpected)}, dangling {len(dangling)} (seed {SEED})"
    )
    assert statuses == [0] * len(workers), unexpected
    assert acked, "no package was acknowledged"
    assert purged > 0, "the sweeper purged no blob: the scenario did not exercise re-puts"
    assert not lost, f"seed {SEED}: acknowledged live packages lost bytes: {lost[:10]}"
    assert not read_problems, f"seed {SEED}: damaged while read: {read_problems[:10]}"
    assert not unexpected, f"seed {SEED}: {unexpected[:10]}"
    assert not broken, broken
    assert not dangling, dangling[:10]


def test_a_forked_process_hashes_large_streams() -> None:
    """A process forked after the parent hashed a large stream (a preloading server, a
    fork-based worker pool) must still hash large streams, and not wait forever."""
    import io
    import signal

    from artifactstore_core.hashing import hash_copy

    data = random.Random("fork").randbytes(4 * 1024 * 1024)
    expected = hash_copy(io.BytesIO(data))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        status = 2
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(20)
            status = 0 if hash_copy(io.BytesIO(data)) == expected else 1
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), (
        f"the forked child hashing 4 MiB died of signal {os.WTERMSIG(status)} "
        "(SIGALRM 14: it hung on the parent's SHA-256 helper threads)"
    )
    assert os.WEXITSTATUS(status) == 0

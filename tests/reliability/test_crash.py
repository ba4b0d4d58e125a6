"""Crash consistency: SIGKILL put, put-many, sweep, tier moves and restores part-way.

Each trial copies a template registry, runs the operation in a forked child, kills it at a
random point of its measured duration or at the N-th call of a chosen system call
(``strace``), then checks the invariants of ``_harness.check`` and runs the operation
again to completion. The short form runs a few trials per scenario; with
``ARTIFACTSTORE_RELIABILITY_LONG=1`` each runs ``ARTIFACTSTORE_RELIABILITY_TRIALS``
(default 200; on PostgreSQL, where put and put-many are crashed too,
``ARTIFACTSTORE_RELIABILITY_PG_TRIALS``, default 50). ``ARTIFACTSTORE_RELIABILITY_SEED``
replays a series; a failure prints the seed and the kill point of each failed trial.
With ``ARTIFACTSTORE_RELIABILITY_REPORT`` set to a file, each scenario appends its
figures there as a JSON line.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from artifactstore_core import ArtifactStore, PutRequest
from artifactstore_core.config import create_engine
from artifactstore_core.errors import NotFoundError
from artifactstore_core.storage.filecopy import MIN_SIZE
from tests.reliability._harness import Registry, Scenario, Summary, opened, run_trials
from tests.reliability.conftest import long_run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(0 if long_run() else 600),
]

SEED = int(os.environ.get("ARTIFACTSTORE_RELIABILITY_SEED", "20261201"))
TRIALS = int(os.environ.get("ARTIFACTSTORE_RELIABILITY_TRIALS", "200")) if long_run() else 3
# A PostgreSQL trial copies a database (CREATE DATABASE … TEMPLATE): several times slower.
PG_TRIALS = int(os.environ.get("ARTIFACTSTORE_RELIABILITY_PG_TRIALS", "50")) if long_run() else 1
PAST = dt.timedelta(days=40)
Ack = Callable[[dict[str, Any]], None]


def _bytes(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


SHARED = {f"shared-{i}.bin": _bytes(f"shared-{i}", 4096 + 997 * i) for i in range(6)}


def _seed_shared(store: ArtifactStore) -> None:
    """A package whose blobs the operations write again (the "already stored" path)."""
    store.put("seed/shared", dict(SHARED), retention_class="summary-evidence")


def _package_status(
    field: str, wanted: str
) -> Callable[[ArtifactStore, dict[str, Any]], str | None]:
    """An ack check: the acknowledged package exists and its ``field`` is ``wanted``."""

    def check(store: ArtifactStore, ack: dict[str, Any]) -> str | None:
        try:
            package = store.describe(ack["package"])
        except NotFoundError:
            return "not registered"
        actual = getattr(package, field)
        return None if actual == wanted else f"{field} is {actual!r}, not {wanted!r}"

    return check


# --------------------------------------------------------------------------- put
def put_scenario(data: Path) -> Scenario:
    """``put`` of a directory: small files, two already stored, one on the kernel-copy path."""
    source = data / "put-src"
    (source / "nested").mkdir(parents=True)
    for name, content in list(SHARED.items())[:2]:
        (source / name).write_bytes(content)
    for i in range(5):
        (source / "nested" / f"part-{i}.csv").write_bytes(_bytes(f"part-{i}", 20_000 * (i + 1)))
    (source / "large.bin").write_bytes(_bytes("large", MIN_SIZE + 65_536))

    def run(store: ArtifactStore, ack: Ack) -> None:
        package = store.put("crash/put", source, kind="report", retention_class="summary-evidence")
        ack({"package": str(package.id)})

    def setup(registry: Registry) -> None:
        with opened(registry) as store:
            _seed_shared(store)

    return Scenario("put", setup, run, _package_status("status", "active"))


# --------------------------------------------------------------------------- put-many
def put_many_scenario(_data: Path) -> Scenario:
    """``put_many`` of 50 small packages sharing blobs with each other and the registry."""
    shared = list(SHARED.values())
    requests = [
        PutRequest(
            f"crash/many-{i}",
            {"part.csv": _bytes(f"many-{i}", 512 + i), "common.bin": shared[i % len(shared)]},
            retention_class="transient",
        )
        for i in range(50)
    ]

    def run(store: ArtifactStore, ack: Ack) -> None:
        for package in store.put_many(requests):
            ack({"package": str(package.id)})

    def setup(registry: Registry) -> None:
        with opened(registry) as store:
            _seed_shared(store)

    return Scenario("put-many", setup, run, _package_status("status", "active"))


# --------------------------------------------------------------------------- sweep
def _aged_registry(registry: Registry) -> None:
    """Packages made 40 days ago: due transient ones sharing blobs with kept summaries,
    one of them held, raw evidence due for the cold tier, and unregistered blobs."""
    created = dt.datetime.now(dt.UTC) - PAST
    shared = list(SHARED.values())
    with opened(registry, clock=lambda: created) as store:
        for i in range(8):
            files = {"shared.bin": shared[i % 6], "own.bin": _bytes(f"t-{i}", 30_000 + i)}
            package = store.put(f"old/transient-{i}", files, retention_class="transient")
            if i == 0:
                store.place_hold(package.id, reason="reliability: a held package keeps bytes")
        for i in range(4):
            files = {"shared.bin": shared[i], "own.bin": _bytes(f"s-{i}", 20_000 + i)}
            store.put(f"keep/summary-{i}", files, retention_class="summary-evidence")
        for i in range(4):
            files = {"shared.bin": shared[i + 2], "log.txt": _bytes(f"r-{i}", 200_000 + i)}
            store.put(f"raw/evidence-{i}", files, retention_class="raw-evidence")
        for i in range(3):
            store.blobs.write(io.BytesIO(_bytes(f"orphan-{i}", 10_000 + i)))


def _check_expired(store: ArtifactStore, ack: dict[str, Any]) -> str | None:
    statuses = {str(p.id): p.status for p in store.list_packages()}
    wrong = [i for i in ack["expired"] if statuses.get(i) != "expired"]
    return f"packages {wrong} not expired" if wrong else None


def sweep_scenario(grace_seconds: int) -> Callable[[Path], Scenario]:
    """A sweep (grace ``grace_seconds``) of ``_aged_registry``: expiries, tier moves, GC."""

    def build(_data: Path) -> Scenario:
        def run(store: ArtifactStore, ack: Ack) -> None:
            result = store.sweep()
            ack({"expired": [str(p.package_id) for p in result.expired]})

        name = f"sweep (grace {grace_seconds} s)"
        return Scenario(name, _aged_registry, run, _check_expired, grace_seconds)

    return build


# --------------------------------------------------------------------------- tiers
def _tiered_packages(store: ArtifactStore) -> list[str]:
    """Four packages whose files are shared in pairs and all round (tier-move subjects)."""
    ids = []
    for i in range(4):
        files = {
            "common.bin": _bytes("common", 300_000),
            "pair.bin": _bytes(f"pair-{i // 2}", 200_000),
            "own-a.bin": _bytes(f"own-a-{i}", 250_000),
            "own-b.bin": _bytes(f"own-b-{i}", 150_000),
        }
        ids.append(str(store.put(f"tier/p-{i}", files, retention_class="summary-evidence").id))
    return ids


def tier_move_scenario(_data: Path) -> Scenario:
    """Tier moves of four packages, one after another, from hot to a cold tier directory."""

    def setup(registry: Registry) -> None:
        with opened(registry) as store:
            _tiered_packages(store)

    def run(store: ArtifactStore, ack: Ack) -> None:
        for package in store.list_packages(name_prefix="tier/"):
            store.move_tier(package.id, "cold")
            ack({"package": str(package.id)})

    return Scenario("tier move", setup, run, _package_status("retrieval_tier", "cold"))


def restore_scenario(_data: Path) -> Scenario:
    """Restores of four archived packages, one after another."""

    def setup(registry: Registry) -> None:
        with opened(registry) as store:
            for package_id in _tiered_packages(store):
                store.move_tier(package_id, "archive")

    def run(store: ArtifactStore, ack: Ack) -> None:
        for package in store.list_packages(name_prefix="tier/"):
            store.restore(package.id)
            ack({"package": str(package.id)})

    return Scenario("restore", setup, run, _package_status("restore_status", "restored"))


def test_verify_of_every_package_passes_with_archived_packages(tmp_path: Path) -> None:
    """``verify`` (``artifactstore verify --all``) looks for an archived package's bytes in
    the archive tier, where they are, not in the hot tier."""
    registry = Registry(tmp_path)
    with opened(registry) as store:
        package = store.put("tier/archived", {"a.bin": _bytes("a", 5000)})
        store.move_tier(package.id, "archive")
        result = store.verify()
    assert result.ok, [(p.content_address, p.detail) for p in result.problems]


SCENARIOS = {
    "put": put_scenario,
    "put-many": put_many_scenario,
    "sweep-grace-0": sweep_scenario(0),
    "sweep-grace-default": sweep_scenario(3600),
    "tier-move": tier_move_scenario,
    "restore": restore_scenario,
}


def _report(summary: Summary) -> None:
    print(f"\n{summary.row()} (seed {summary.seed}, operation {summary.duration:.2f} s)")
    target = os.environ.get("ARTIFACTSTORE_RELIABILITY_REPORT")
    if target:
        row = {
            "scenario": summary.scenario, "backend": summary.backend, "trials": summary.trials,
            "kills": summary.kills, "failed": len(summary.failed), "lost": summary.lost,
            "dangling": summary.dangling, "seconds": round(summary.seconds, 1),
            "operation_seconds": round(summary.duration, 3), "seed": summary.seed,
        }  # fmt: skip
        with open(target, "a") as out:
            out.write(json.dumps(row) + "\n")


def _crash(name: str, template: Registry, tmp_path: Path, trials: int = TRIALS) -> None:
    scenario = SCENARIOS[name](tmp_path)
    summary = run_trials(scenario, template, tmp_path, trials=trials, seed=SEED)
    _report(summary)
    assert summary.trials == trials
    assert summary.kills > 0, f"{name}: no trial killed the operation (seed {SEED})"
    assert not summary.failed, "\n".join(summary.failed)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_crash_leaves_nothing_lost_or_dangling(name: str, tmp_path: Path) -> None:
    _crash(name, Registry(tmp_path / "template"), tmp_path)


@pytest.mark.postgres
@pytest.mark.parametrize("name", ["put", "put-many"])
def test_crash_on_postgresql_leaves_nothing_lost_or_dangling(
    name: str, tmp_path: Path, postgres_admin_url: str
) -> None:
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    database = f"t_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    url = admin.url.set(database=database).render_as_string(hide_password=False)
    template = Registry(tmp_path / "template", url, postgres_admin_url)
    try:
        _crash(name, template, tmp_path, PG_TRIALS)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()

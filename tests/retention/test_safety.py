"""Retention safety: random histories keep every invariant; a killed sweep finishes later."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from artifactstore_core import ArtifactStore, Package, Settings
from artifactstore_core.config import create_engine
from artifactstore_core.domain.retention import keeping_rule
from artifactstore_core.errors import RetentionError
from artifactstore_core.testing.clock import FrozenClock

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLASSES = ["transient", "raw-evidence", "summary-evidence", "release-evidence", "permanent-record"]
CONTENTS = [b"a", b"b", b"c", b"d", b"e", b"f"]


def _all_packages(store: ArtifactStore) -> list[Package]:
    return store.list_packages()


def _machine(fresh: Callable[[], tuple[ArtifactStore, FrozenClock]]) -> type[RuleBasedStateMachine]:
    store: ArtifactStore
    clock: FrozenClock

    class RetentionMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            nonlocal store, clock
            store, clock = fresh()
            self.counter = 0

        def teardown(self) -> None:
            store.close()

        @rule(
            files=st.dictionaries(
                st.sampled_from(["x", "y", "z"]), st.sampled_from(CONTENTS), min_size=1
            ),
            retention_class=st.sampled_from(CLASSES),
        )
        def put(self, files: dict[str, bytes], retention_class: str) -> None:
            self.counter += 1
            store.put(f"pkg/{self.counter % 4}", files, retention_class=retention_class)

        @precondition(lambda self: self.counter > 0)
        @rule(index=st.integers(min_value=0, max_value=50))
        def hold(self, index: int) -> None:
            packages = _all_packages(store)
            with contextlib.suppress(RetentionError):  # refused on a purged tombstone
                store.place_hold(packages[index % len(packages)].id, reason="stateful")

        @precondition(lambda self: self.counter > 0)
        @rule(index=st.integers(min_value=0, max_value=50))
        def release(self, index: int) -> None:
            held = [p for p in _all_packages(store) if p.holds]
            if held:
                package = held[index % len(held)]
                store.release_hold(package.id, package.holds[0].hold_id)

        @precondition(lambda self: self.counter > 0)
        @rule(index=st.integers(min_value=0, max_value=50), new_class=st.sampled_from(CLASSES),
              override=st.booleans())  # fmt: skip
        def change_class(self, index: int, new_class: str, override: bool) -> None:
            packages = [p for p in _all_packages(store) if p.status == "active"]
            if not packages:
                return
            package = packages[index % len(packages)]
            reason = "stateful" if override else None
            with contextlib.suppress(RetentionError):  # a refused shortening is a legal outcome
                store.set_retention(
                    package.id, retention_class=new_class, override=override, reason=reason
                )

        @precondition(lambda self: self.counter > 0)
        @rule(index=st.integers(min_value=0, max_value=50), tier=st.sampled_from(["hot", "cold"]))
        def move(self, index: int, tier: str) -> None:
            packages = [p for p in _all_packages(store) if p.status == "active"]
            if packages:
                store.move_tier(packages[index % len(packages)].id, tier)

        @initialize()
        def keep_the_current_version_of_one_name(self) -> None:
            store.set_keep_rule("prefix:pkg/1", 1)

        @rule(selector=st.sampled_from(["prefix:pkg/0", "prefix:pkg", *(f"class:{c}" for c in
              CLASSES[:3])]), count=st.integers(min_value=1, max_value=3))  # fmt: skip
        def keep(self, selector: str, count: int) -> None:
            store.set_keep_rule(selector, count, reason="stateful")

        @rule(index=st.integers(min_value=0, max_value=10))
        def unkeep(self, index: int) -> None:
            rules = store.keep_rules()
            if rules:
                store.remove_keep_rule(rules[index % len(rules)].selector, reason="stateful")

        @rule(days=st.integers(min_value=0, max_value=400))
        def sweep(self, days: int) -> None:
            clock.advance(dt.timedelta(days=days))
            current = _kept_by_rules(store)
            store.sweep(grace=dt.timedelta(0))
            after = {p.id: p.status for p in _all_packages(store)}
            assert all(after[p] == "active" for p in current), "a sweep expired a current version"
            live = {
                e.blob.content_address
                for p in _all_packages(store)
                if p.status == "active" or p.on_hold
                for e in p.files
            }
            dead = {
                e.blob.content_address
                for p in _all_packages(store)
                if p.status == "expired" and not p.on_hold
                for e in p.files
            } - live
            for address in dead:
                for backend in store.tiers.values():
                    assert not backend.exists(_digest(address)), f"{address} survived the sweep"

        @invariant()
        def live_bytes_are_present(self) -> None:
            for package in _all_packages(store):
                if package.status == "active" or package.on_hold:
                    backend = store.tiers[package.retrieval_tier]
                    for entry in package.files:
                        assert backend.exists(entry.blob.blake3), (package.reference, entry.path)
                if package.retention_class == "permanent-record":
                    assert package.status == "active"

        @invariant()
        def views_and_log_hold(self) -> None:
            assert store.check_views() == []
            store.verify_log()

    return RetentionMachine


def _kept_by_rules(store: ArtifactStore) -> set[object]:
    """Active packages a keep rule keeps: fewer than its count of newer live versions."""
    packages = _all_packages(store)
    kept = set()
    for package in packages:
        if package.status != "active":
            continue
        newer = sum(
            1 for other in packages
            if other.name == package.name and other.version > package.version
            and (other.status == "active" or other.on_hold)
        )  # fmt: skip
        rule = keeping_rule(store.keep_rules(), package.name, package.retention_class, newer)
        if rule is not None:
            kept.add(package.id)
    return kept


def _new_database(database_url: str, tmp_path: Path, index: int) -> str:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / f'example-{index}.db'}"
    name = f"{url.database}_{index}"
    admin = create_engine(url.set(database="postgres").render_as_string(hide_password=False),
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _digest(address: str):  # type: ignore[no-untyped-def]
    from artifactstore_core.hashing import Digest

    return Digest.parse(address)


def test_random_retention_histories(database_url: str, tmp_path: Path) -> None:
    """Each example starts from an empty registry (a new SQLite file or PostgreSQL database)."""
    counter = iter(range(1_000_000))

    def fresh() -> tuple[ArtifactStore, FrozenClock]:
        index = next(counter)
        url = _new_database(database_url, tmp_path, index)
        root = tmp_path / f"example-{index}"
        clock = FrozenClock()
        settings = Settings(database_url=url, storage_url=str(root / "hot"),
                            tier_cold_url=str(root / "cold"))  # fmt: skip
        return ArtifactStore.from_settings(settings, clock=clock), clock

    run_state_machine_as_test(
        _machine(fresh),
        settings=settings(
            max_examples=10,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


KILLER = textwrap.dedent(
    """
    import datetime as dt, os, sys
    from artifactstore_core import ArtifactStore
    store = ArtifactStore.open(sys.argv[1], sys.argv[2], migrate=False)
    deleted = 0
    def progress(step, count):
        global deleted
        if step == "delete":
            deleted += count
            if deleted == 12:
                os._exit(9)  # killed mid-batch: bytes deleted, batch not yet committed
    store.sweep(dt.datetime.fromisoformat(sys.argv[3]), grace=dt.timedelta(0), batch_size=5,
                progress=progress)
    """
)


def test_killed_sweep_finishes_on_the_next_run(database_url: str, tmp_path: Path) -> None:
    storage = str(tmp_path / "blobs")
    with ArtifactStore.open(database_url, storage) as store:
        for index in range(30):
            store.put(f"gone/{index}", {"f": f"doomed {index}".encode(), "keep": b"kept"},
                      retention_class="transient")  # fmt: skip
        keeper = store.put("keeper", {"keep": b"kept"}, retention_class="permanent-record")
        when = store.clock() + dt.timedelta(days=8)
        killed = subprocess.run(
            [sys.executable, "-c", KILLER, database_url, storage, when.isoformat()],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert killed.returncode == 9, killed.stderr
        purged_before = [e for e in store.events() if e.event.event_type == "BlobPurged"]
        assert len(purged_before) == 10  # two batches of five committed, the third was not
        assert store.describe("keeper").status == "active"

        result = store.sweep(when, grace=dt.timedelta(0), batch_size=5)
        assert len(result.deleted) == 20
        purged = [e.event.subject_id for e in store.events() if e.event.event_type == "BlobPurged"]
        assert len(purged) == len(set(purged)) == 30
        assert all(store.describe(f"gone/{i}").status == "expired" for i in range(30))
        assert store.read_bytes(keeper.id, "keep") == b"kept"
        assert sum(1 for _ in store.blobs.iter_addresses()) == 1
        assert store.check_views() == []
        store.verify_log()

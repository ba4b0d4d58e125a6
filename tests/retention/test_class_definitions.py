"""Retention class definitions live in the event log; a class changed behind it is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from artifactstore_core import ArtifactStore
from artifactstore_core.cli import cli
from artifactstore_core.config import create_engine
from artifactstore_core.errors import IntegrityError
from artifactstore_core.migrate import upgrade
from artifactstore_core.schema import events, retention_classes
from artifactstore_core.seed import RETENTION_CLASS_SEEDS
from artifactstore_core.testing.clock import FrozenClock
from tests.retention.conftest import DAY

pytestmark = pytest.mark.integration


def _definitions(store: ArtifactStore) -> dict[str, dict[str, object]]:
    return {
        e.event.subject_id: e.event.to_payload()
        for e in store.events()
        if e.event.event_type == "RetentionClassDefined"
    }


def _tamper(store: ArtifactStore, name: str, **values: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(retention_classes).where(retention_classes.c.name == name).values(**values)
        )


def test_built_in_classes_are_recorded_once_when_a_registry_opens(
    database_url: str, tmp_path: Path
) -> None:
    with ArtifactStore.open(database_url, str(tmp_path / "blobs")) as store:
        recorded = _definitions(store)
        assert recorded == {seed["name"]: dict(seed) for seed in RETENTION_CLASS_SEEDS}
        assert store.check_views() == []
    with ArtifactStore.open(database_url, str(tmp_path / "blobs")) as store:
        kinds = [e.event.event_type for e in store.events()]
        assert kinds.count("RetentionClassDefined") == len(RETENTION_CLASS_SEEDS)


def test_a_registry_seeded_without_events_records_its_classes_on_first_open(
    database_url: str, tmp_path: Path
) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(retention_classes).values(
                name="site-audit", description="Added by SQL before events existed.",
                default_duration_seconds=42, protected=True, transitions=None,
            )
        )  # fmt: skip
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 0
    engine.dispose()
    with ArtifactStore.open(database_url, str(tmp_path / "blobs")) as store:
        recorded = _definitions(store)
        assert recorded["site-audit"]["default_duration_seconds"] == 42
        assert len(recorded) == len(RETENTION_CLASS_SEEDS) + 1
        assert store.check_views() == []


def test_a_class_changed_behind_the_log_fails_views_check_and_stops_the_sweep(
    tiered: ArtifactStore, clock: FrozenClock, database_url: str, tmp_path: Path
) -> None:
    package = tiered.put("release/bundle", {"a.txt": b"a"}, retention_class="release-evidence")
    _tamper(tiered, "release-evidence", protected=False, default_duration_seconds=1)

    differences = tiered.check_views()
    assert [(d.table, d.key) for d in differences] == [
        ("retention_classes", {"name": "release-evidence"})
    ]
    result = CliRunner().invoke(
        cli,
        ["views", "check"],
        env={"ARTIFACTSTORE_DATABASE_URL": database_url,
             "ARTIFACTSTORE_STORAGE_URL": str(tmp_path / "hot")},
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "retention_classes {'name': 'release-evidence'}" in result.output

    clock.advance(3 * DAY)
    for dry_run in (True, False):
        with pytest.raises(IntegrityError, match=r"'release-evidence'.*protected"):
            tiered.sweep(dry_run=dry_run)
    assert tiered.describe(package.id).status == "active"

    tiered.rebuild_views()
    assert tiered.check_views() == []
    assert tiered.sweep().expired == []


def test_tampered_transitions_stop_the_sweep_naming_the_field(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    tiered.put("raw/capture", {"c.bin": b"c"}, retention_class="raw-evidence")
    _tamper(tiered, "raw-evidence", transitions=[{"after_seconds": 1, "tier": "archive"}])
    clock.advance(DAY)
    with pytest.raises(IntegrityError, match=r"'raw-evidence'.*transitions"):
        tiered.sweep()
    assert tiered.list_packages()[0].retrieval_tier == "hot"


def test_a_protected_package_put_under_a_tampered_class_is_not_expired(
    tiered: ArtifactStore, clock: FrozenClock
) -> None:
    _tamper(tiered, "release-evidence", protected=False, default_duration_seconds=1)
    package = tiered.put("release/rushed", {"a.txt": b"a"}, retention_class="release-evidence")
    tiered.rebuild_views()  # the class is restored; the package keeps its short expiry
    assert tiered.check_views() == []
    clock.advance(DAY)
    with pytest.raises(IntegrityError, match=r"release/rushed@1.*'release-evidence'"):
        tiered.sweep()
    assert tiered.describe(package.id).status == "active"


def test_a_sweep_before_the_definitions_are_recorded_says_how_to_record_them(
    database_url: str, tmp_path: Path
) -> None:
    upgrade(database_url)
    store = ArtifactStore.open(database_url, str(tmp_path / "blobs"), migrate=False)
    with store, pytest.raises(IntegrityError, match=r"no retention class definitions.*migrate"):
        store.sweep(dry_run=True)

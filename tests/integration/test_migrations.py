"""A registry with data at an older schema revision upgrades without losing a row.

The registry is filled by the current code, migrated down to the previous revision
(whose columns the downgrade fills as that revision's projectors did), then opened, which
upgrades it to the head again. Every view row survives and the views still equal a replay
of the log, before and after ``views rebuild``.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from artifactstore_core import ArtifactStore, Settings, migrate
from artifactstore_core.config import create_engine
from artifactstore_core.errors import IntegrityError
from artifactstore_core.projections.projectors import run_id_of
from artifactstore_core.schema import PROJECTION_TABLES, artifact_packages

pytestmark = pytest.mark.integration

PREVIOUS = "0001"
DROPPED = {
    "artifact_packages": {"retention_class"},
    "storage_locations": {"retrieval_tier", "restore_status"},
}
# Columns and tables later revisions added (0003, 0004: empty for this registry's rows;
# 0007: filled from what the rows already hold, checked by the test of 0007 below).
ADDED = {"artifact_packages": {"idempotency_key", "run_id"}, "retention_state": {"name", "version"}}
ADDED_TABLES = {
    "access_tokens", "retention_keep_rules", "log_subtrees", "log_checkpoints",
    "package_attestations",
}  # fmt: skip


def _open(database_url: str, tmp_path: Path) -> ArtifactStore:
    settings = Settings(
        database_url=database_url,
        storage_url=str(tmp_path / "hot"),
        tier_cold_url=str(tmp_path / "cold"),
        tier_archive_url=str(tmp_path / "archive"),
    )
    return ArtifactStore.from_settings(settings)


def _fill(store: ArtifactStore) -> None:
    """Packages touching every view: files, shared blobs, inputs, tags, holds, class
    changes, a schema, and copies in the cold and archive tiers."""
    store.register_schema("report", {"type": "object", "required": ["rows"]})
    raw = store.put("raw/day", {"a.csv": b"a,b\n1,2\n", "shared": b"shared"})
    report = store.put(
        "reports/day", {"r.json": b"{}", "shared": b"shared"}, kind="report",
        metadata={"rows": 1}, inputs=[raw.id], retention_class="summary-evidence",
    )  # fmt: skip
    store.tag(report.id, "published")
    store.set_retention(raw.id, retention_class="release-evidence")
    store.place_hold(report.id, reason="audit 2026")
    store.move_tier(raw.id, "cold")
    store.put("old/day", {"f": b"archived"})
    store.move_tier("old/day", "archive")
    store.restore("old/day")


def _rows(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Every view row, without the dropped columns, in a stable order."""
    rows = {}
    with engine.connect() as conn:
        for table in PROJECTION_TABLES:
            if table.name in ADDED_TABLES:
                continue
            left_out = DROPPED.get(table.name, set()) | ADDED.get(table.name, set())
            kept = [c for c in table.c if c.name not in left_out]
            result = conn.execute(sa.select(*kept)).mappings()
            rows[table.name] = sorted((dict(r) for r in result), key=repr)
    return rows


def _columns(engine: sa.Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_a_registry_at_the_previous_revision_upgrades_with_every_row(
    database_url: str, tmp_path: Path
) -> None:
    with _open(database_url, tmp_path) as store:
        _fill(store)
        before = _rows(store.engine)
    assert all(before[t] for t in ("artifact_files", "package_inputs", "retention_holds"))

    command.downgrade(migrate.alembic_config(database_url), PREVIOUS)
    engine = create_engine(database_url)
    try:
        assert migrate.current_revision(engine) == PREVIOUS
        for table, columns in DROPPED.items():
            assert columns <= _columns(engine, table)
        with engine.connect() as conn:
            classes = conn.execute(
                sa.text(
                    "SELECT p.name, p.retention_class FROM artifact_packages p "
                    "JOIN retention_state s ON s.package_id = p.package_id "
                    "WHERE p.retention_class = s.retention_class"
                )
            ).all()
            tiers = conn.execute(
                sa.text("SELECT backend, retrieval_tier, restore_status FROM storage_locations")
            ).all()
        # What revision 0001's projectors wrote: the current class, and the backend again.
        assert sorted(classes) == [
            ("old/day", "raw-evidence"),
            ("raw/day", "release-evidence"),
            ("reports/day", "summary-evidence"),
        ]
        assert {(b, t, s) for b, t, s in tiers} == {(b, b, None) for b, _, _ in tiers}
        assert {b for b, _, _ in tiers} == {"hot", "cold", "archive"}
        assert _rows(engine) == before
    finally:
        engine.dispose()

    with _open(database_url, tmp_path) as store:  # opening migrates to the head
        assert migrate.current_revision(store.engine) == migrate.SCHEMA_REVISION
        for table, columns in DROPPED.items():
            assert not columns & _columns(store.engine, table)
        assert "ix_storage_locations_retrieval_tier" not in {
            i["name"] for i in sa.inspect(store.engine).get_indexes("storage_locations")
        }
        assert _rows(store.engine) == before
        assert store.check_views() == []
        assert store.rebuild_views() > 0
        assert store.check_views() == []
        assert _rows(store.engine) == before
        assert store.verify().ok
        assert store.read_bytes("reports/day", "r.json") == b"{}"
        assert store.describe("raw/day").retention_class == "release-evidence"


def test_sqlite_migration_refuses_to_commit_a_row_pointing_nowhere(tmp_path: Path) -> None:
    """SQLite rebuilds a table to drop a column with its foreign keys off (else dropping
    the old table would cascade to every file, tag and hold); the keys are checked before
    the migration commits."""
    database_url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate.upgrade(database_url, PREVIOUS)
    raw = sqlite3.connect(tmp_path / "registry.db")  # foreign keys are off by default
    with closing(raw), raw:
        raw.execute("INSERT INTO package_inputs VALUES (?, ?)", ("01" * 16, "02" * 16))
    with pytest.raises(IntegrityError, match=r"package_inputs.*artifact_packages"):
        migrate.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        assert migrate.current_revision(engine) == PREVIOUS
    finally:
        engine.dispose()


def test_opening_a_registry_logs_one_line_not_alembics_steps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Dagster run (root logger at INFO) opening a new registry saw ~12 Alembic lines."""
    caplog.set_level(logging.INFO)
    with _open(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path):
        pass
    assert [r.name for r in caplog.records if r.name.startswith("alembic")] == []
    assert [r.getMessage() for r in caplog.records] == [
        f"registry schema upgraded from nothing to {migrate.SCHEMA_REVISION}"
    ]
    assert logging.getLogger("alembic").level == logging.NOTSET  # restored


def _listing_columns(engine: sa.Engine) -> dict[str, set[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            "run_id": set(conn.execute(sa.text(
                "SELECT name, version, run_id FROM artifact_packages"))),
            "state": set(conn.execute(sa.text(
                "SELECT p.name, p.version, s.name, s.version FROM retention_state s "
                "JOIN artifact_packages p ON p.package_id = s.package_id"))),
        }  # fmt: skip


def _index_names(engine: sa.Engine, table: str) -> set[str]:
    return {i["name"] for i in sa.inspect(engine).get_indexes(table)}


def test_revision_0007_fills_run_ids_and_state_names_and_downgrades(
    database_url: str, tmp_path: Path
) -> None:
    """The listing columns of existing rows come from what the rows hold: the run id from
    provenance (text only, as the projector takes it), name and version from the package;
    the views then equal a replay of the log."""
    with _open(database_url, tmp_path) as store:
        _fill(store)
        store.put("runs/a", {"f": b"1"}, provenance={"run_id": "run-\u00fc/7"})
        store.put("runs/a", {"f": b"2"}, provenance={"run_id": "run-8", "producer": "p"})
        before = _rows(store.engine) | _listing_columns(store.engine)
    assert {("runs/a", 1, "run-\u00fc/7"), ("runs/a", 2, "run-8")} < before["run_id"]
    assert ("raw/day", 1, None) in before["run_id"]
    assert len(before["state"]) == 5 and all(p == s for p, _, s, _ in before["state"])

    config = migrate.alembic_config(database_url)
    command.downgrade(config, "0006")
    engine = create_engine(database_url)
    try:
        assert "run_id" not in _columns(engine, "artifact_packages")
        assert not {"name", "version"} & _columns(engine, "retention_state")
        assert "ix_artifact_packages_kind" in _index_names(engine, "artifact_packages")
        assert "ix_package_tags_tag_name" not in _index_names(engine, "package_tags")
    finally:
        engine.dispose()

    with _open(database_url, tmp_path) as store:  # opening migrates to the head
        assert _rows(store.engine) | _listing_columns(store.engine) == before
        assert "ix_artifact_packages_kind" not in _index_names(store.engine, "artifact_packages")
        assert store.check_views() == []

    command.downgrade(config, "0006")
    engine = create_engine(database_url)
    try:  # a run id that is not text, in a hand-made log's provenance
        with engine.begin() as conn:
            conn.execute(
                sa.update(artifact_packages)
                .where(artifact_packages.c.name == "old/day")
                .values(provenance={"run_id": 7})
            )
    finally:
        engine.dispose()
    command.upgrade(config, "head")
    engine = create_engine(database_url)
    try:
        assert run_id_of({"run_id": 7}) is None
        assert _listing_columns(engine)["run_id"] == before["run_id"]
    finally:
        engine.dispose()

"""The schema exists as declared after create_all and after Alembic, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import cbor2
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from artifactstore_core import migrate
from artifactstore_core.config import create_engine
from artifactstore_core.schema import (
    artifact_packages,
    events,
    metadata,
    metadata_schemas,
    retention_classes,
    retention_state,
)
from artifactstore_core.seed import DAY

pytestmark = pytest.mark.integration

EXPECTED_COLUMNS = {
    "events": {
        "sequence", "created_at", "event_type", "schema_version", "subject_kind",
        "subject_id", "actor", "payload", "payload_digest", "previous_digest", "chain_digest",
        "leaf_hash",
    },
    "artifact_packages": {
        "package_id", "name", "version", "kind", "digest_algorithm", "digest_primary",
        "digest_sha256", "content_address", "size", "file_count", "metadata", "provenance",
        "actor", "created_at", "event_sequence", "idempotency_key", "run_id",
    },
    "artifact_files": {
        "package_id", "path", "size", "digest_algorithm", "digest_primary", "digest_sha256",
        "content_address",
    },
    "storage_locations": {
        "content_address", "backend", "digest_algorithm", "digest_primary", "digest_sha256",
        "size", "uri", "stored_at",
    },
    "retention_state": {
        "package_id", "name", "version", "retention_class", "status", "expires_at", "on_hold",
        "expired_at", "retrieval_tier", "restore_status", "updated_at",
    },
    "retention_classes": {
        "name", "description", "default_duration_seconds", "protected", "transitions",
        "created_at",
    },
    "metadata_schemas": {"kind", "json_schema", "registered_by", "registered_at",
                         "event_sequence"},
    "package_tags": {"name", "tag", "package_id", "moved_at", "actor"},
    "package_inputs": {"package_id", "input_package_id"},
    "retention_holds": {"hold_id", "package_id", "hold_kind", "reason", "actor", "placed_at"},
    "leases": {"name", "holder", "acquired_at", "expires_at"},
    "access_tokens": {
        "token_id", "secret_sha256", "actor", "scopes", "run_id", "parent_id", "description",
        "issued_by", "issued_at", "expires_at", "revoked_at", "event_sequence",
    },
    "upload_sessions": {
        "upload_id", "actor", "token_id", "state", "received", "chunks", "content_address",
        "created_at", "updated_at", "expires_at",
    },
    "log_subtrees": {"height", "position", "hash"},
    "log_checkpoints": {"origin", "size", "root", "note", "issued_at"},
}  # fmt: skip

EXPECTED_INDEXES = {
    "events": {"ix_events_subject", "ix_events_type_sequence"},
    "artifact_files": {"ix_artifact_files_content_address"},
    "artifact_packages": {
        "ix_artifact_packages_content_address",
        "ix_artifact_packages_kind_name_version",
        "ix_artifact_packages_created_at",
        "ix_artifact_packages_name_idempotency_key",
        "ix_artifact_packages_run_id",
    },
    "package_tags": {"ix_package_tags_package_id", "ix_package_tags_tag_name"},
    "storage_locations": {"ix_storage_locations_digest_sha256"},
    "upload_sessions": {"ix_upload_sessions_expires_at"},
    "retention_state": {
        "ix_retention_state_status_expires_at",
        "ix_retention_state_retention_class_status_name_version",
        "ix_retention_state_status_name_version",
    },
}


def _assert_schema(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    tables = set(inspector.get_table_names())
    assert set(EXPECTED_COLUMNS) <= tables
    for table, columns in EXPECTED_COLUMNS.items():
        assert {c["name"] for c in inspector.get_columns(table)} == columns, table
    for table, indexes in EXPECTED_INDEXES.items():
        assert indexes <= {i["name"] for i in inspector.get_indexes(table)}, table
    index = {i["name"]: i for i in inspector.get_indexes("events")}
    assert index["ix_events_subject"]["column_names"] == ["subject_kind", "subject_id"]
    assert index["ix_events_type_sequence"]["column_names"] == ["event_type", "sequence"]


def test_create_all_builds_every_table_column_and_index(engine: sa.Engine) -> None:
    metadata.create_all(engine)
    _assert_schema(engine)


def test_alembic_upgrade_builds_schema_and_seed(engine: sa.Engine, database_url: str) -> None:
    migrate.upgrade(database_url)
    _assert_schema(engine)
    assert "alembic_version" in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.select(retention_classes.c.name, retention_classes.c.default_duration_seconds)
            ).all()
        )
    assert rows == {
        "transient": 7 * DAY,
        "raw-evidence": 90 * DAY,
        "summary-evidence": 365 * DAY,
        "release-evidence": 2_555 * DAY,
        "permanent-record": None,
    }


def test_alembic_head_matches_the_metadata(engine: sa.Engine, database_url: str) -> None:
    migrate.upgrade(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_round_trip_event_package_json_timestamps_and_boolean_default(
    engine: sa.Engine, database_url: str
) -> None:
    migrate.upgrade(database_url)
    created = dt.datetime(2026, 5, 16, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    package_id = uuid.uuid4()
    payload = cbor2.dumps({"name": "reports/daily", "n": 1}, canonical=True)
    with engine.begin() as conn:
        conn.execute(
            events.insert().values(
                created_at=created,
                event_type="PackageRegistered",
                subject_kind="package",
                subject_id=str(package_id),
                actor="tester",
                payload=payload,
                payload_digest="blake3:" + "0" * 64,
                chain_digest="blake3:" + "1" * 64,
                leaf_hash=bytes(32),
            )
        )
        conn.execute(
            artifact_packages.insert().values(
                package_id=package_id,
                name="reports/daily",
                version=1,
                kind="report",
                digest_primary="a" * 64,
                digest_sha256="b" * 64,
                content_address="blake3:" + "a" * 64,
                size=3,
                file_count=1,
                metadata={"rows": 3, "nested": {"ok": True}},
                provenance={},
                actor="tester",
                created_at=created,
                event_sequence=1,
            )
        )
        conn.execute(
            retention_state.insert().values(
                package_id=package_id,
                name="reports/daily",
                version=1,
                retention_class="transient",
                updated_at=created,
            )
        )
    with engine.connect() as conn:
        event = conn.execute(sa.select(events)).one()
        package = conn.execute(sa.select(artifact_packages)).one()
        state = conn.execute(sa.select(retention_state)).one()
    assert cbor2.loads(event.payload) == {"name": "reports/daily", "n": 1}
    assert event.sequence == 1
    assert package.metadata == {"rows": 3, "nested": {"ok": True}}
    assert package.package_id == package_id
    assert state.on_hold is False
    assert state.retrieval_tier == "hot"
    assert state.status == "active"
    assert package.created_at.tzinfo is not None
    assert package.created_at == created
    assert event.created_at.utcoffset() == dt.timedelta(0)


def test_foreign_key_to_unknown_retention_class_is_refused(
    engine: sa.Engine, database_url: str
) -> None:
    migrate.upgrade(database_url)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            metadata_schemas.insert().values(
                kind="report",
                json_schema={"type": "object"},
                registered_by="t",
                registered_at=dt.datetime.now(dt.UTC),
                event_sequence=1,
            )
        )
        conn.execute(
            retention_state.insert().values(
                package_id=uuid.uuid4(),
                name="reports/daily",
                version=1,
                retention_class="no-such-class",
                updated_at=dt.datetime.now(dt.UTC),
            )
        )
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(metadata_schemas)).scalar() == 0


def test_schema_revision_constant_is_the_alembic_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert script.get_current_head() == migrate.SCHEMA_REVISION


def test_open_migrates_an_empty_database_once(engine: sa.Engine, database_url: str) -> None:
    assert migrate.current_revision(engine) is None
    migrate.ensure_current(engine, database_url)
    assert migrate.current_revision(engine) == migrate.SCHEMA_REVISION
    migrate.ensure_current(engine, database_url)  # already current: a no-op
    assert migrate.current_revision(engine) == migrate.SCHEMA_REVISION


def _open_store(database_url: str, storage: str) -> None:
    from artifactstore_core import ArtifactStore

    ArtifactStore.open(database_url, storage).close()


def test_processes_opening_a_new_registry_at_once_all_succeed(
    database_url: str, tmp_path: Path
) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_open_store, args=(database_url, str(tmp_path / "blobs")))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    engine = create_engine(database_url)
    assert migrate.current_revision(engine) == migrate.SCHEMA_REVISION
    engine.dispose()

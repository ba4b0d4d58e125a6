"""The registry's SQL schema: one ``MetaData`` for the event log, projections and config.

``events`` is the source of truth. ``artifact_packages``, ``artifact_files``,
``package_tags``, ``package_inputs``, ``package_attestations``, ``storage_locations``,
``retention_state`` and ``retention_holds`` are projections rebuilt from it, and so are
``metadata_schemas`` (the JSON Schema per kind, registered through events) and
``retention_classes`` (seeded by the migration, recorded as ``RetentionClassDefined``
events when a registry opens); ``leases`` coordinates sweeps. ``log_subtrees`` caches
heads of the log's Merkle tree (derived from ``events.leaf_hash``) and
``log_checkpoints`` keeps the signed checkpoints.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    }
)

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """``DateTime(timezone=True)`` that stores UTC and always reads back an aware datetime.

    SQLite keeps no offset, so values are normalised to UTC on the way in and tagged
    UTC on the way out; naive datetimes are refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLite stores text; this writes exactly the format SQLAlchemy's SQLite DATETIME
        # writes and parses ("YYYY-MM-DD HH:MM:SS.ffffff"), in one C call per value.
        def to_text(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value.isoformat()} given; use an aware datetime")
            utc = value.astimezone(dt.UTC).replace(tzinfo=None)
            return utc.isoformat(" ", "microseconds")

        return to_text

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLAlchemy's SQLite DATETIME parses with a regular expression: 3 of them were a
        # tenth of loading 100 packages. ``fromisoformat`` reads the same text in C.
        def from_text(value: str | None) -> dt.datetime | None:
            if value is None:
                return None
            parsed = dt.datetime.fromisoformat(value)
            return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed

        return from_text

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


Timestamp = UTCDateTime()
DIGEST_LEN = 80  # "blake3:" or "sha256:" + 64 hex digits, with room to spare
NAME_LEN = 512


def _digest_columns() -> list[sa.Column[str]]:
    """The ADR-0001 digest columns, kept wherever a blob or package digest is stored."""
    return [
        sa.Column("digest_algorithm", sa.String(16), nullable=False, server_default="blake3"),
        sa.Column("digest_primary", sa.String(128), nullable=False),
        sa.Column("digest_sha256", sa.String(64), nullable=False),
        sa.Column("content_address", sa.String(DIGEST_LEN), nullable=False),
    ]


events = sa.Table(
    "events",
    metadata,
    sa.Column("sequence", BigIntPK, primary_key=True, autoincrement=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("subject_kind", sa.String(32), nullable=False),
    sa.Column("subject_id", sa.String(NAME_LEN), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("payload_digest", sa.String(DIGEST_LEN), nullable=False),
    sa.Column("previous_digest", sa.String(DIGEST_LEN), nullable=True),
    sa.Column("chain_digest", sa.String(DIGEST_LEN), nullable=False),
    # SHA-256(0x00 ‖ chain input): the event's leaf in the log's RFC 9162 Merkle tree.
    sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
    sa.Index("ix_events_subject", "subject_kind", "subject_id"),
    sa.Index("ix_events_type_sequence", "event_type", "sequence"),
    sa.UniqueConstraint("chain_digest", name="uq_events_chain_digest"),
)

log_subtrees = sa.Table(
    "log_subtrees",
    metadata,
    # The head of the complete subtree of 2**height leaves starting at leaf
    # ``position * 2**height``, for heights of 8 and more: written at append, read by proofs.
    sa.Column("height", sa.SmallInteger, primary_key=True),
    sa.Column("position", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

log_checkpoints = sa.Table(
    "log_checkpoints",
    metadata,
    # Signed checkpoints (C2SP signed notes) of the log under ``origin``, never two
    # inconsistent ones; not a projection: they are the registry's signed statements.
    sa.Column("origin", sa.String(255), primary_key=True),
    sa.Column("size", sa.BigInteger, primary_key=True),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("issued_at", Timestamp, nullable=False),
)

retention_classes = sa.Table(
    "retention_classes",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("default_duration_seconds", sa.BigInteger, nullable=True),
    sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("transitions", JSONType, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False, server_default=sa.func.now()),
)

metadata_schemas = sa.Table(
    "metadata_schemas",
    metadata,
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("json_schema", JSONType, nullable=False),
    sa.Column("registered_by", sa.String(255), nullable=False),
    sa.Column("registered_at", Timestamp, nullable=False),
    sa.Column("event_sequence", sa.BigInteger, nullable=False),
)

artifact_packages = sa.Table(
    "artifact_packages",
    metadata,
    sa.Column("package_id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(NAME_LEN), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    *_digest_columns(),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("metadata", JSONType, nullable=False),
    sa.Column("provenance", JSONType, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("event_sequence", sa.BigInteger, nullable=False),
    # The caller's key for a registration it may retry (one package per name and key).
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    # ``provenance.run_id`` (text, else NULL), a column of its own so ``ls --run-id`` is
    # indexed. Run ids are up to 4096 characters, over PostgreSQL's B-tree entry limit:
    # there the index is a hash index (equality is all it serves).
    sa.Column("run_id", sa.Text, nullable=True),
    sa.UniqueConstraint("name", "version", name="uq_artifact_packages_name_version"),
    sa.Index("ix_artifact_packages_name_idempotency_key", "name", "idempotency_key"),
    sa.Index("ix_artifact_packages_content_address", "content_address"),
    # Listings are in (name, version) order: each filter's index ends with them, so a
    # filtered listing with a limit reads only the rows it returns.
    sa.Index("ix_artifact_packages_kind_name_version", "kind", "name", "version"),
    sa.Index("ix_artifact_packages_created_at", "created_at"),
    sa.Index("ix_artifact_packages_run_id", "run_id", postgresql_using="hash"),
)

artifact_files = sa.Table(
    "artifact_files",
    metadata,
    sa.Column("package_id", sa.Uuid, primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    *_digest_columns(),
    sa.ForeignKeyConstraint(["package_id"], ["artifact_packages.package_id"], ondelete="CASCADE"),
    sa.Index("ix_artifact_files_content_address", "content_address"),
)

package_tags = sa.Table(
    "package_tags",
    metadata,
    sa.Column("name", sa.String(NAME_LEN), primary_key=True),
    sa.Column("tag", sa.String(128), primary_key=True),
    sa.Column("package_id", sa.Uuid, nullable=False),
    sa.Column("moved_at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.ForeignKeyConstraint(["package_id"], ["artifact_packages.package_id"], ondelete="CASCADE"),
    sa.Index("ix_package_tags_package_id", "package_id"),
    sa.Index("ix_package_tags_tag_name", "tag", "name"),
)

package_inputs = sa.Table(
    "package_inputs",
    metadata,
    sa.Column("package_id", sa.Uuid, primary_key=True),
    sa.Column("input_package_id", sa.Uuid, primary_key=True),
    sa.ForeignKeyConstraint(["package_id"], ["artifact_packages.package_id"], ondelete="CASCADE"),
    sa.ForeignKeyConstraint(
        ["input_package_id"], ["artifact_packages.package_id"], ondelete="CASCADE"
    ),
    sa.Index("ix_package_inputs_input_package_id", "input_package_id"),
)

package_attestations = sa.Table(
    "package_attestations",
    metadata,
    # The attestation package (kind ``attestation``) and the package it attests: the
    # attestation is listed, verified and retained with its subject (``PackageAttested``).
    sa.Column("attestation_id", sa.Uuid, primary_key=True),
    sa.Column("subject_id", sa.Uuid, nullable=False),
    sa.Column("predicate_type", sa.String(255), nullable=False),
    sa.Column("attested_at", Timestamp, nullable=False),
    sa.Column("event_sequence", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(
        ["attestation_id"], ["artifact_packages.package_id"], ondelete="CASCADE"
    ),
    sa.ForeignKeyConstraint(["subject_id"], ["artifact_packages.package_id"], ondelete="CASCADE"),
    sa.Index("ix_package_attestations_subject_id", "subject_id"),
)

storage_locations = sa.Table(
    "storage_locations",
    metadata,
    sa.Column("content_address", sa.String(DIGEST_LEN), primary_key=True),
    sa.Column("backend", sa.String(64), primary_key=True),
    sa.Column("digest_algorithm", sa.String(16), nullable=False, server_default="blake3"),
    sa.Column("digest_primary", sa.String(128), nullable=False),
    sa.Column("digest_sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("uri", sa.String(2048), nullable=False),
    sa.Column("stored_at", Timestamp, nullable=False),
    sa.Index("ix_storage_locations_digest_sha256", "digest_sha256"),
)

retention_state = sa.Table(
    "retention_state",
    metadata,
    sa.Column("package_id", sa.Uuid, primary_key=True),
    # The package's name and version (never change), so that listings filtered by class
    # or status walk an index in listing order.
    sa.Column("name", sa.String(NAME_LEN), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("retention_class", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("on_hold", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expired_at", Timestamp, nullable=True),
    sa.Column("retrieval_tier", sa.String(16), nullable=False, server_default="hot"),
    sa.Column("restore_status", sa.String(16), nullable=True),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.ForeignKeyConstraint(["package_id"], ["artifact_packages.package_id"], ondelete="CASCADE"),
    sa.ForeignKeyConstraint(["retention_class"], ["retention_classes.name"]),
    sa.Index("ix_retention_state_status_expires_at", "status", "expires_at"),
    sa.Index(
        "ix_retention_state_retention_class_status_name_version",
        "retention_class",
        "status",
        "name",
        "version",
    ),
    sa.Index("ix_retention_state_status_name_version", "status", "name", "version"),
)

retention_holds = sa.Table(
    "retention_holds",
    metadata,
    sa.Column("hold_id", sa.Uuid, primary_key=True),
    sa.Column("package_id", sa.Uuid, nullable=False),
    sa.Column("hold_kind", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("placed_at", Timestamp, nullable=False),
    sa.ForeignKeyConstraint(["package_id"], ["artifact_packages.package_id"], ondelete="CASCADE"),
    sa.Index("ix_retention_holds_package_id", "package_id"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("acquired_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
)

retention_keep_rules = sa.Table(
    "retention_keep_rules",
    metadata,
    # "class:<retention class>" or "prefix:<package name>" (domain.retention.KeepRule).
    sa.Column("selector", sa.String(600), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("pattern", sa.String(NAME_LEN), nullable=False),
    sa.Column("keep_latest", sa.Integer, nullable=False),
    sa.Column("set_by", sa.String(255), nullable=False),
    sa.Column("set_at", Timestamp, nullable=False),
    sa.Column("event_sequence", sa.BigInteger, nullable=False),
)

access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("token_id", sa.String(64), primary_key=True),
    # SHA-256 of the secret (hex): the secret itself is never stored.
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("scopes", JSONType, nullable=False),
    sa.Column("run_id", sa.String(255), nullable=True),
    sa.Column("parent_id", sa.String(64), nullable=True),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("issued_by", sa.String(255), nullable=False),
    sa.Column("issued_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp, nullable=True),
    sa.Column("event_sequence", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("secret_sha256", name="uq_access_tokens_secret_sha256"),
)

upload_sessions = sa.Table(
    "upload_sessions",
    metadata,
    sa.Column("upload_id", sa.Uuid, primary_key=True),
    sa.Column("actor", sa.String(255), nullable=False),
    # The access token that opened the session (revoking it ends the session).
    sa.Column("token_id", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    # Bytes received so far, in order: the next chunk starts here.
    sa.Column("received", sa.BigInteger, nullable=False),
    # The staged parts, in order: JSON list of [start offset, part name, byte count].
    sa.Column("chunks", JSONType, nullable=False),
    sa.Column("content_address", sa.String(DIGEST_LEN), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Index("ix_upload_sessions_expires_at", "expires_at"),
)

#: PostgreSQL samples these name columns into 1,000 histogram bounds, not 100. Names
#: share long prefixes (``team/dataset-``), and a prefix range's share was estimated from
#: within one bound's gap at about 1% of its rows: ``ls PREFIX --limit 100`` then sorted
#: every match instead of reading 100 rows in index order.
NAME_STATISTICS = {"artifact_packages": "name", "retention_state": "name", "package_tags": "name"}


def set_name_statistics(conn: sa.Connection, table: str) -> None:
    """Apply ``NAME_STATISTICS`` to ``table`` on PostgreSQL (migration 0007, rebuilds)."""
    if conn.dialect.name == "postgresql" and table in NAME_STATISTICS:
        column = NAME_STATISTICS[table]
        conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 1000")


#: Tables rebuilt from the event log, in dependency order (parents first).
PROJECTION_TABLES: tuple[sa.Table, ...] = (
    retention_classes,
    artifact_packages,
    artifact_files,
    package_inputs,
    package_tags,
    package_attestations,
    storage_locations,
    retention_state,
    retention_holds,
    metadata_schemas,
    retention_keep_rules,
    access_tokens,
)

"""Initial schema: event log, projections, configuration tables and seed retention classes.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 10:03:41.426046
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from artifactstore_core.seed import RETENTION_CLASS_SEEDS

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "events",
        sa.Column(
            "sequence",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("schema_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=512), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_digest", sa.String(length=80), nullable=False),
        sa.Column("previous_digest", sa.String(length=80), nullable=True),
        sa.Column("chain_digest", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_events")),
        sa.UniqueConstraint("chain_digest", name="uq_events_chain_digest"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_subject", ["subject_kind", "subject_id"], unique=False)
        batch_op.create_index("ix_events_type_sequence", ["event_type", "sequence"], unique=False)

    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "metadata_schemas",
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "json_schema",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("registered_by", sa.String(length=255), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_metadata_schemas")),
    )
    op.create_table(
        "retention_classes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("default_duration_seconds", sa.BigInteger(), nullable=True),
        sa.Column("protected", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "transitions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_retention_classes")),
    )
    op.create_table(
        "storage_locations",
        sa.Column("content_address", sa.String(length=80), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column(
            "digest_algorithm", sa.String(length=16), server_default="blake3", nullable=False
        ),
        sa.Column("digest_primary", sa.String(length=128), nullable=False),
        sa.Column("digest_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("retrieval_tier", sa.String(length=16), server_default="hot", nullable=False),
        sa.Column("restore_status", sa.String(length=16), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("content_address", "backend", name=op.f("pk_storage_locations")),
    )
    with op.batch_alter_table("storage_locations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_storage_locations_retrieval_tier", ["retrieval_tier"], unique=False
        )

    op.create_table(
        "artifact_packages",
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "digest_algorithm", sa.String(length=16), server_default="blake3", nullable=False
        ),
        sa.Column("digest_primary", sa.String(length=128), nullable=False),
        sa.Column("digest_sha256", sa.String(length=64), nullable=False),
        sa.Column("content_address", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "provenance",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("retention_class", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_sequence", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["retention_class"],
            ["retention_classes.name"],
            name=op.f("fk_artifact_packages_retention_class_retention_classes"),
        ),
        sa.PrimaryKeyConstraint("package_id", name=op.f("pk_artifact_packages")),
        sa.UniqueConstraint("name", "version", name="uq_artifact_packages_name_version"),
    )
    with op.batch_alter_table("artifact_packages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_artifact_packages_content_address", ["content_address"], unique=False
        )
        batch_op.create_index("ix_artifact_packages_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_artifact_packages_kind", ["kind"], unique=False)

    op.create_table(
        "artifact_files",
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "digest_algorithm", sa.String(length=16), server_default="blake3", nullable=False
        ),
        sa.Column("digest_primary", sa.String(length=128), nullable=False),
        sa.Column("digest_sha256", sa.String(length=64), nullable=False),
        sa.Column("content_address", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["artifact_packages.package_id"],
            name=op.f("fk_artifact_files_package_id_artifact_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("package_id", "path", name=op.f("pk_artifact_files")),
    )
    with op.batch_alter_table("artifact_files", schema=None) as batch_op:
        batch_op.create_index(
            "ix_artifact_files_content_address", ["content_address"], unique=False
        )

    op.create_table(
        "package_inputs",
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("input_package_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["input_package_id"],
            ["artifact_packages.package_id"],
            name=op.f("fk_package_inputs_input_package_id_artifact_packages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["artifact_packages.package_id"],
            name=op.f("fk_package_inputs_package_id_artifact_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("package_id", "input_package_id", name=op.f("pk_package_inputs")),
    )
    with op.batch_alter_table("package_inputs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_package_inputs_input_package_id", ["input_package_id"], unique=False
        )

    op.create_table(
        "package_tags",
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["artifact_packages.package_id"],
            name=op.f("fk_package_tags_package_id_artifact_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("name", "tag", name=op.f("pk_package_tags")),
    )
    with op.batch_alter_table("package_tags", schema=None) as batch_op:
        batch_op.create_index("ix_package_tags_package_id", ["package_id"], unique=False)

    op.create_table(
        "retention_holds",
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("hold_kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["artifact_packages.package_id"],
            name=op.f("fk_retention_holds_package_id_artifact_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hold_id", name=op.f("pk_retention_holds")),
    )
    with op.batch_alter_table("retention_holds", schema=None) as batch_op:
        batch_op.create_index("ix_retention_holds_package_id", ["package_id"], unique=False)

    op.create_table(
        "retention_state",
        sa.Column("package_id", sa.Uuid(), nullable=False),
        sa.Column("retention_class", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_hold", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retrieval_tier", sa.String(length=16), server_default="hot", nullable=False),
        sa.Column("restore_status", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["artifact_packages.package_id"],
            name=op.f("fk_retention_state_package_id_artifact_packages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["retention_class"],
            ["retention_classes.name"],
            name=op.f("fk_retention_state_retention_class_retention_classes"),
        ),
        sa.PrimaryKeyConstraint("package_id", name=op.f("pk_retention_state")),
    )
    with op.batch_alter_table("retention_state", schema=None) as batch_op:
        batch_op.create_index(
            "ix_retention_state_status_expires_at", ["status", "expires_at"], unique=False
        )

    retention_classes = sa.table(
        "retention_classes",
        sa.column("name", sa.String),
        sa.column("description", sa.Text),
        sa.column("default_duration_seconds", sa.BigInteger),
        sa.column("protected", sa.Boolean),
        sa.column("transitions", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )
    op.bulk_insert(retention_classes, list(RETENTION_CLASS_SEEDS))


def downgrade() -> None:

    with op.batch_alter_table("retention_state", schema=None) as batch_op:
        batch_op.drop_index("ix_retention_state_status_expires_at")

    op.drop_table("retention_state")
    with op.batch_alter_table("retention_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_retention_holds_package_id")

    op.drop_table("retention_holds")
    with op.batch_alter_table("package_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_package_tags_package_id")

    op.drop_table("package_tags")
    with op.batch_alter_table("package_inputs", schema=None) as batch_op:
        batch_op.drop_index("ix_package_inputs_input_package_id")

    op.drop_table("package_inputs")
    with op.batch_alter_table("artifact_files", schema=None) as batch_op:
        batch_op.drop_index("ix_artifact_files_content_address")

    op.drop_table("artifact_files")
    with op.batch_alter_table("artifact_packages", schema=None) as batch_op:
        batch_op.drop_index("ix_artifact_packages_kind")
        batch_op.drop_index("ix_artifact_packages_created_at")
        batch_op.drop_index("ix_artifact_packages_content_address")

    op.drop_table("artifact_packages")
    with op.batch_alter_table("storage_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_storage_locations_retrieval_tier")

    op.drop_table("storage_locations")
    op.drop_table("retention_classes")
    op.drop_table("metadata_schemas")
    op.drop_table("leases")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type_sequence")
        batch_op.drop_index("ix_events_subject")

    op.drop_table("events")

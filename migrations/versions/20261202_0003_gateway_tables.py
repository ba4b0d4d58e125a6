"""Tables the HTTP gateway needs: access tokens, upload sessions, idempotency keys.

``access_tokens`` is a projection of ``TokenIssued``/``TokenRevoked`` events (only the
SHA-256 of each secret is kept). ``upload_sessions`` is working state, like ``leases``:
a chunked upload's progress, its bytes staged in the blob backend. A registration's
``idempotency_key`` lets a retried request find the package it registered. An index on
``storage_locations.digest_sha256`` answers a blob ``stat`` by SHA-256.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 03:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from artifactstore_core.schema import JSONType, Timestamp

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("token_id", sa.String(64), nullable=False),
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
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("secret_sha256", name="uq_access_tokens_secret_sha256"),
    )
    op.create_table(
        "upload_sessions",
        sa.Column("upload_id", sa.Uuid, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("token_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.Column("chunks", JSONType, nullable=False),
        sa.Column("content_address", sa.String(80), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("upload_id", name=op.f("pk_upload_sessions")),
    )
    op.create_index(
        "ix_upload_sessions_expires_at", "upload_sessions", ["expires_at"], unique=False
    )
    with op.batch_alter_table("artifact_packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(255), nullable=True))
        batch_op.create_index(
            "ix_artifact_packages_name_idempotency_key", ["name", "idempotency_key"]
        )
    op.create_index(
        "ix_storage_locations_digest_sha256", "storage_locations", ["digest_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_storage_locations_digest_sha256", table_name="storage_locations")
    with op.batch_alter_table("artifact_packages", schema=None) as batch_op:
        batch_op.drop_index("ix_artifact_packages_name_idempotency_key")
        batch_op.drop_column("idempotency_key")
    op.drop_index("ix_upload_sessions_expires_at", table_name="upload_sessions")
    op.drop_table("upload_sessions")
    op.drop_table("access_tokens")

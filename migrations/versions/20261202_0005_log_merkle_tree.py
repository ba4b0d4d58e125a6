"""The log's Merkle tree (issue #15): each event's leaf hash, the cached heads of its
complete subtrees, and signed checkpoints. Existing events get their leaf hashes here,
from the same chain input their chain digests cover.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from artifactstore_core.eventlog.tree import backfill_leaves
from artifactstore_core.schema import Timestamp

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leaf_hash", sa.LargeBinary(32), nullable=True))
    op.create_table(
        "log_subtrees",
        sa.Column("height", sa.SmallInteger, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("height", "position", name=op.f("pk_log_subtrees")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("origin", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("issued_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("origin", "size", name=op.f("pk_log_checkpoints")),
    )
    backfill_leaves(op.get_bind())
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.alter_column("leaf_hash", existing_type=sa.LargeBinary(32), nullable=False)


def downgrade() -> None:
    op.drop_table("log_checkpoints")
    op.drop_table("log_subtrees")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("leaf_hash")

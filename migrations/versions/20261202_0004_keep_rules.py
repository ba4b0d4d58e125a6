"""Keep rules: the newest versions of each name a rule matches are kept whatever their
expiry (issue #14). ``retention_keep_rules`` is a projection of ``KeepRuleSet`` and
``KeepRuleRemoved`` events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from artifactstore_core.schema import Timestamp

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retention_keep_rules",
        sa.Column("selector", sa.String(600), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("pattern", sa.String(512), nullable=False),
        sa.Column("keep_latest", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", Timestamp, nullable=False),
        sa.Column("event_sequence", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("selector", name=op.f("pk_retention_keep_rules")),
    )


def downgrade() -> None:
    op.drop_table("retention_keep_rules")

"""Drop the columns that duplicated state and were never read.

``artifact_packages.retention_class`` copied ``retention_state.retention_class`` (the one
every query reads); ``storage_locations.retrieval_tier`` repeated ``backend`` (the tier
holding that copy) and ``restore_status`` was always NULL (a package's restore status is
``retention_state.restore_status``). The downgrade fills them as revision 0001's
projectors did.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 01:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLASS_FK = "fk_artifact_packages_retention_class_retention_classes"


def upgrade() -> None:
    with op.batch_alter_table("storage_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_storage_locations_retrieval_tier")
        batch_op.drop_column("restore_status")
        batch_op.drop_column("retrieval_tier")
    with op.batch_alter_table("artifact_packages", schema=None) as batch_op:
        batch_op.drop_constraint(_CLASS_FK, type_="foreignkey")
        batch_op.drop_column("retention_class")


def downgrade() -> None:
    with op.batch_alter_table("storage_locations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("retrieval_tier", sa.String(length=16), server_default="hot", nullable=False)
        )
        batch_op.add_column(sa.Column("restore_status", sa.String(length=16), nullable=True))
    op.execute("UPDATE storage_locations SET retrieval_tier = backend")
    with op.batch_alter_table("storage_locations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_storage_locations_retrieval_tier", ["retrieval_tier"], unique=False
        )

    with op.batch_alter_table("artifact_packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_class", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE artifact_packages SET retention_class = (SELECT s.retention_class "
        "FROM retention_state s WHERE s.package_id = artifact_packages.package_id)"
    )
    with op.batch_alter_table("artifact_packages", schema=None) as batch_op:
        batch_op.alter_column("retention_class", existing_type=sa.String(64), nullable=False)
        batch_op.create_foreign_key(_CLASS_FK, "retention_classes", ["retention_class"], ["name"])

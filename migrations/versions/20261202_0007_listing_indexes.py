"""Listings at scale (issue #16): ``artifact_packages.run_id`` (indexed ``ls --run-id``),
``retention_state.name``/``version``, indexes that end in the listing order (name,
version) for the kind, tag, retention class and status filters, and on PostgreSQL finer
statistics of the name columns (``schema.NAME_STATISTICS``). Existing rows get the new
columns from what they already hold: the run id from ``provenance`` (text only, as the
projector takes it), name and version from their package.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The run id where it is JSON text (``projectors.run_id_of``), in each dialect's JSON SQL.
_RUN_ID = {
    "postgresql": "UPDATE artifact_packages SET run_id = provenance ->> 'run_id' "
    "WHERE jsonb_typeof(provenance -> 'run_id') = 'string'",
    "sqlite": "UPDATE artifact_packages SET run_id = json_extract(provenance, '$.run_id') "
    "WHERE json_type(provenance, '$.run_id') = 'text'",
}
# The name columns listings range over (``schema.NAME_STATISTICS``).
_NAMES = ("artifact_packages", "retention_state", "package_tags")


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("artifact_packages", sa.Column("run_id", sa.Text, nullable=True))
    bind.exec_driver_sql(_RUN_ID[bind.dialect.name])
    op.drop_index("ix_artifact_packages_kind", table_name="artifact_packages")
    op.create_index(
        "ix_artifact_packages_kind_name_version", "artifact_packages", ["kind", "name", "version"]
    )
    op.create_index(
        "ix_artifact_packages_run_id", "artifact_packages", ["run_id"], postgresql_using="hash"
    )
    op.create_index("ix_package_tags_tag_name", "package_tags", ["tag", "name"])

    with op.batch_alter_table("retention_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(512), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer, nullable=True))
    state = sa.table(
        "retention_state", sa.column("package_id"), sa.column("name"), sa.column("version")
    )
    package = sa.table(
        "artifact_packages", sa.column("package_id"), sa.column("name"), sa.column("version")
    )
    of_package = package.c.package_id == state.c.package_id
    op.execute(
        sa.update(state).values(
            name=sa.select(package.c.name).where(of_package).scalar_subquery(),
            version=sa.select(package.c.version).where(of_package).scalar_subquery(),
        )
    )
    with op.batch_alter_table("retention_state", schema=None) as batch_op:
        batch_op.alter_column("name", existing_type=sa.String(512), nullable=False)
        batch_op.alter_column("version", existing_type=sa.Integer, nullable=False)
    op.create_index(
        "ix_retention_state_retention_class_status_name_version",
        "retention_state",
        ["retention_class", "status", "name", "version"],
    )
    op.create_index(
        "ix_retention_state_status_name_version", "retention_state", ["status", "name", "version"]
    )
    if bind.dialect.name == "postgresql":
        for table in _NAMES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN name SET STATISTICS 1000")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _NAMES:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN name SET STATISTICS -1")
    op.drop_index("ix_retention_state_status_name_version", table_name="retention_state")
    op.drop_index(
        "ix_retention_state_retention_class_status_name_version", table_name="retention_state"
    )
    with op.batch_alter_table("retention_state", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("name")
    op.drop_index("ix_package_tags_tag_name", table_name="package_tags")
    op.drop_index("ix_artifact_packages_run_id", table_name="artifact_packages")
    op.drop_index("ix_artifact_packages_kind_name_version", table_name="artifact_packages")
    op.create_index("ix_artifact_packages_kind", "artifact_packages", ["kind"])
    with op.batch_alter_table("artifact_packages", schema=None) as batch_op:
        batch_op.drop_column("run_id")

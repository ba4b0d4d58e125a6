"""Attestations (issue #15): ``package_attestations`` links an attestation package (kind
``attestation``) to the package it attests; a projection of ``PackageAttested`` events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from artifactstore_core.schema import Timestamp

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "package_attestations",
        sa.Column("attestation_id", sa.Uuid, nullable=False),
        sa.Column("subject_id", sa.Uuid, nullable=False),
        sa.Column("predicate_type", sa.String(255), nullable=False),
        sa.Column("attested_at", Timestamp, nullable=False),
        sa.Column("event_sequence", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(
            ["attestation_id"],
            ["artifact_packages.package_id"],
            name=op.f("fk_package_attestations_attestation_id_artifact_packages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["artifact_packages.package_id"],
            name=op.f("fk_package_attestations_subject_id_artifact_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attestation_id", name=op.f("pk_package_attestations")),
    )
    op.create_index("ix_package_attestations_subject_id", "package_attestations", ["subject_id"])


def downgrade() -> None:
    op.drop_index("ix_package_attestations_subject_id", table_name="package_attestations")
    op.drop_table("package_attestations")

"""The predictor forms of each model version: what was tried, timed and chosen per workload.

Forms are derived from a version, so they live beside it rather than in it: registration
writes them with the version, and ``modelrail models compile`` adds or replaces them for
versions registered before (whose rows stay as they were).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_version_forms",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_version_forms_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("model_version_id", name=op.f("pk_model_version_forms")),
    )


def downgrade() -> None:
    op.drop_table("model_version_forms")

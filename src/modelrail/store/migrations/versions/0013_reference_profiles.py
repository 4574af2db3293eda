"""Reference profiles: the data a model version was trained and tested on, summarised.

``reference_profiles`` holds one JSON document per model version (``modelrail.reference.v1``,
see ``monitoring/profiles.py``): per column quantiles, bins or category frequencies of the
run's train and test data, and the distribution of the version's predictions on its test
data. It is derived from the version, so it lives beside it like the predictor forms;
versions registered before this revision have no row. ``batch_runs.profile`` keeps the same
kind of summary of what a batch run scored (its input profile and prediction distribution).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_profiles",
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_reference_profiles_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("model_version_id", name=op.f("pk_reference_profiles")),
    )
    op.add_column("batch_runs", sa.Column("profile", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_runs") as batch:
        batch.drop_column("profile")
    op.drop_table("reference_profiles")

"""Shadow traffic: running totals of live requests also scored by a candidate.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shadow_results",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("live_environment", sa.String(length=64), nullable=False),
        sa.Column("live_version", sa.Integer(), nullable=False),
        sa.Column("shadow_environment", sa.String(length=64), nullable=False),
        sa.Column("shadow_version", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("agreeing_rows", sa.BigInteger(), nullable=False),
        sa.Column("live_seconds", sa.Float(), nullable=False),
        sa.Column("shadow_seconds", sa.Float(), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model",
            "live_environment",
            "live_version",
            "shadow_environment",
            "shadow_version",
            name=op.f("pk_shadow_results"),
        ),
    )


def downgrade() -> None:
    op.drop_table("shadow_results")

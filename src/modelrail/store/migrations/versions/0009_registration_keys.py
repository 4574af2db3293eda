"""Registration keys: a client's retried registration finds the version it made.

A client of the team server names each registration with a random key; registering again
with the same key (a retry after a dropped answer) returns the version the first request
made instead of a second one. Local registrations carry no key.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_version_keys",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_version_keys_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_model_version_keys")),
    )


def downgrade() -> None:
    op.drop_table("model_version_keys")

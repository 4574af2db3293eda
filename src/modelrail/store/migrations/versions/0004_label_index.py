"""An index that finds a shape's last label in one probe, so labelling a new run stays
fast however many versions its lineage already has.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_component_versions_lineage_shape_label",
        "component_versions",
        ["lineage", "shape_fingerprint", "major", "minor"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_component_versions_lineage_shape_label", table_name="component_versions")

"""Initial schema: experiments, runs with params / metrics / tags / artifacts,
versioned components, models and model versions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from modelrail.store.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = (
    "experiments",
    "runs",
    "run_params",
    "run_tags",
    "run_metrics",
    "run_latest_metrics",
    "run_artifacts",
    "component_versions",
    "run_components",
    "models",
    "model_versions",
)


def upgrade() -> None:
    bind = op.get_bind()
    # The first revision creates the tables as ``tables.py`` defined them at revision
    # 0001; later revisions alter them with explicit operations.
    for name in _TABLES:
        metadata.tables[name].create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for name in reversed(_TABLES):
        metadata.tables[name].drop(bind)

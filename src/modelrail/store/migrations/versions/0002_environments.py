"""Environments: what each environment holds, the append-only audit history of every
change, and approval requests.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE_GUARDS = (
    """CREATE TRIGGER environment_events_no_update BEFORE UPDATE ON environment_events
    BEGIN SELECT RAISE(ABORT, 'environment_events is append-only'); END""",
    """CREATE TRIGGER environment_events_no_delete BEFORE DELETE ON environment_events
    BEGIN SELECT RAISE(ABORT, 'environment_events is append-only'); END""",
)
_POSTGRES_GUARDS = (
    """CREATE FUNCTION modelrail_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'environment_events is append-only'; END $$""",
    """CREATE TRIGGER environment_events_append_only
    BEFORE UPDATE OR DELETE ON environment_events
    FOR EACH ROW EXECUTE FUNCTION modelrail_append_only()""",
    """CREATE TRIGGER environment_events_no_truncate
    BEFORE TRUNCATE ON environment_events
    FOR EACH STATEMENT EXECUTE FUNCTION modelrail_append_only()""",
)


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gates", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_approval_requests_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_requests")),
    )
    op.create_index("ix_approval_requests_status", "approval_requests", ["status"], unique=False)
    op.create_table(
        "environment_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gates", sa.Text(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_environment_events_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environment_events")),
    )
    op.create_index(
        "ix_environment_events_model_env",
        "environment_events",
        ["model_id", "environment", "id"],
        unique=False,
    )
    op.create_table(
        "environment_slots",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_environment_slots_model_id_models")
        ),
        sa.PrimaryKeyConstraint("model_id", "environment", name=op.f("pk_environment_slots")),
    )
    # The history must stay complete: the database itself refuses edits and deletions.
    guards = _SQLITE_GUARDS if op.get_bind().dialect.name == "sqlite" else _POSTGRES_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER environment_events_no_update")
        op.execute("DROP TRIGGER environment_events_no_delete")
    else:
        op.execute("DROP TRIGGER environment_events_append_only ON environment_events")
        op.execute("DROP TRIGGER environment_events_no_truncate ON environment_events")
        op.execute("DROP FUNCTION modelrail_append_only()")
    op.drop_table("environment_slots")
    op.drop_table("environment_events")
    op.drop_table("approval_requests")

"""The team's one policy in the store: versioned, append-only, and named by every promotion.

``policies`` keeps each applied version of the environment chain, gates and permissions
(as canonical TOML); the database refuses edits and deletions as it does for the history.
``environment_events.policy_version`` names the version that judged each change (None: the
project's own modelrail.toml judged it, as before there was a shared policy).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_SQLITE_GUARDS = (
    """CREATE TRIGGER policies_no_update BEFORE UPDATE ON policies
    BEGIN SELECT RAISE(ABORT, 'policies is append-only'); END""",
    """CREATE TRIGGER policies_no_delete BEFORE DELETE ON policies
    BEGIN SELECT RAISE(ABORT, 'policies is append-only'); END""",
)
# The function's name starts with modelrail_append_only so the app-role grants see the
# table as append-only (store/db.py).
_POSTGRES_GUARDS = (
    """CREATE FUNCTION modelrail_append_only_policies() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'policies is append-only'; END $$""",
    """CREATE TRIGGER policies_append_only BEFORE UPDATE OR DELETE ON policies
    FOR EACH ROW EXECUTE FUNCTION modelrail_append_only_policies()""",
    """CREATE TRIGGER policies_no_truncate BEFORE TRUNCATE ON policies
    FOR EACH STATEMENT EXECUTE FUNCTION modelrail_append_only_policies()""",
)


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_policies")),
    )
    guards = _SQLITE_GUARDS if op.get_bind().dialect.name == "sqlite" else _POSTGRES_GUARDS
    for statement in guards:
        op.execute(statement)
    op.add_column("environment_events", sa.Column("policy_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("environment_events") as batch:
        batch.drop_column("policy_version")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER policies_no_update")
        op.execute("DROP TRIGGER policies_no_delete")
    else:
        op.execute("DROP TRIGGER policies_append_only ON policies")
        op.execute("DROP TRIGGER policies_no_truncate ON policies")
        op.execute("DROP FUNCTION modelrail_append_only_policies()")
    op.drop_table("policies")

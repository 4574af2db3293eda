"""Imports: records brought in from a bundle (``modelrail import``) or another tracker.

``imports`` keeps one row per import that changed the store: what kind of source, its name
and store, the file's sha256, who imported and when, and a summary of what came in.
``imported_events`` keeps the source store's history of the imported versions (promotions,
approvals, rollbacks) apart from this store's own ``environment_events``: those changes
passed another store's gates, so no gate or rollback here counts them. Both are
append-only; the database refuses edits and deletions. ``store_identity`` holds one random
id that names this store in the bundles it writes, so that two stores at the same path on
two machines are never taken for one.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TABLES = ("imports", "imported_events")


def _sqlite_guards(table: str) -> tuple[str, ...]:
    return (
        f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
        f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
        BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END""",
    )


# The function's name starts with modelrail_append_only so the app-role grants see the
# table as append-only (store/db.py).
def _postgres_guards(table: str) -> tuple[str, ...]:
    return (
        f"""CREATE FUNCTION modelrail_append_only_{table}() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{table} is append-only'; END $$""",
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION modelrail_append_only_{table}()""",
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION modelrail_append_only_{table}()""",
    )


def upgrade() -> None:
    identity = op.create_table(
        "store_identity",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_identity")),
    )
    op.bulk_insert(identity, [{"id": uuid.uuid4().hex, "created_at": time.time()}])
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_store", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("imported_by", sa.String(length=128), nullable=False),
        sa.Column("imported_at", sa.Float(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_table(
        "imported_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=512), nullable=False),
        sa.Column("origin_id", sa.BigInteger(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gates", sa.Text(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_imported_events_import_id_imports")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_imported_events_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imported_events")),
        sa.UniqueConstraint(
            "origin", "origin_id", name=op.f("uq_imported_events_origin_origin_id")
        ),
    )
    op.create_index("ix_imported_events_model", "imported_events", ["model_id", "id"], unique=False)
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in _TABLES:
        for statement in _sqlite_guards(table) if sqlite else _postgres_guards(table):
            op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in reversed(_TABLES):
        if sqlite:
            op.execute(f"DROP TRIGGER {table}_no_update")
            op.execute(f"DROP TRIGGER {table}_no_delete")
        else:
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP FUNCTION modelrail_append_only_{table}()")
    op.drop_index("ix_imported_events_model", table_name="imported_events")
    op.drop_table("imported_events")
    op.drop_table("imports")
    op.drop_table("store_identity")

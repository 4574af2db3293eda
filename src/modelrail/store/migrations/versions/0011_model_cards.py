"""The owner's free-text sections of model cards (intended use, limitations, ...).

``model_card_sections`` keeps every edit of a section: a row names the model, the version it
is about (NULL: every version of the model), the section's title, its text, who wrote it and
when. The newest row of a (model, version, section) is what a card shows; older rows are its
history, so the table is append-only like the environment history (the database refuses
edits and deletions). An empty text removes a section from the card and is kept too.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_SQLITE_GUARDS = (
    """CREATE TRIGGER model_card_sections_no_update BEFORE UPDATE ON model_card_sections
    BEGIN SELECT RAISE(ABORT, 'model_card_sections is append-only'); END""",
    """CREATE TRIGGER model_card_sections_no_delete BEFORE DELETE ON model_card_sections
    BEGIN SELECT RAISE(ABORT, 'model_card_sections is append-only'); END""",
)
# The function's name starts with modelrail_append_only so the app-role grants see the
# table as append-only (store/db.py).
_POSTGRES_GUARDS = (
    """CREATE FUNCTION modelrail_append_only_model_card_sections() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'model_card_sections is append-only'; END $$""",
    """CREATE TRIGGER model_card_sections_append_only
    BEFORE UPDATE OR DELETE ON model_card_sections
    FOR EACH ROW EXECUTE FUNCTION modelrail_append_only_model_card_sections()""",
    """CREATE TRIGGER model_card_sections_no_truncate BEFORE TRUNCATE ON model_card_sections
    FOR EACH STATEMENT EXECUTE FUNCTION modelrail_append_only_model_card_sections()""",
)


def upgrade() -> None:
    op.create_table(
        "model_card_sections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("section", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_card_sections_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_card_sections")),
    )
    op.create_index(
        "ix_model_card_sections_model_version",
        "model_card_sections",
        ["model_id", "version", "id"],
    )
    guards = _SQLITE_GUARDS if op.get_bind().dialect.name == "sqlite" else _POSTGRES_GUARDS
    for statement in guards:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER model_card_sections_no_update")
        op.execute("DROP TRIGGER model_card_sections_no_delete")
    else:
        op.execute("DROP TRIGGER model_card_sections_append_only ON model_card_sections")
        op.execute("DROP TRIGGER model_card_sections_no_truncate ON model_card_sections")
        op.execute("DROP FUNCTION modelrail_append_only_model_card_sections()")
    op.drop_index("ix_model_card_sections_model_version", table_name="model_card_sections")
    op.drop_table("model_card_sections")

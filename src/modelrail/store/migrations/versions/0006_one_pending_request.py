"""At most one waiting approval request per model, environment and version, enforced by
the database; requests remember the version ``--if-holds`` expected.

Before the unique index can exist, stores written by older modelrail are tidied up:

- a waiting request past its expiry is stored as ``expired`` (until now expiry was only
  derived when reading; new requests now store it the same way before they are opened);
- of several requests still waiting for the same model, environment and version (racing
  promotions could open them), the oldest stays open and every other one is rejected by
  ``modelrail``, with the reason naming the request it duplicated and a ``reject`` event in
  the history, as a person's rejection would have.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ACTOR = "modelrail"
_PENDING = sa.text("status = 'pending'")

_requests = sa.table(
    "approval_requests",
    sa.column("id", sa.Integer()),
    sa.column("model_id", sa.Integer()),
    sa.column("version", sa.Integer()),
    sa.column("environment", sa.String()),
    sa.column("status", sa.String()),
    sa.column("expires_at", sa.Float()),
    sa.column("decided_by", sa.String()),
    sa.column("decided_at", sa.Float()),
    sa.column("decision_reason", sa.Text()),
)
_slots = sa.table(
    "environment_slots",
    sa.column("model_id", sa.Integer()),
    sa.column("environment", sa.String()),
    sa.column("version", sa.Integer()),
)
_events = sa.table(
    "environment_events",
    sa.column("model_id", sa.Integer()),
    sa.column("environment", sa.String()),
    sa.column("action", sa.String()),
    sa.column("from_version", sa.Integer()),
    sa.column("to_version", sa.Integer()),
    sa.column("actor", sa.String()),
    sa.column("reason", sa.Text()),
    sa.column("gates", sa.Text()),
    sa.column("forced", sa.Boolean()),
    sa.column("request_id", sa.Integer()),
    sa.column("created_at", sa.Float()),
)


def upgrade() -> None:
    op.add_column("approval_requests", sa.Column("if_holds", sa.Integer(), nullable=True))
    conn = op.get_bind()
    now = time.time()
    r = _requests.c
    conn.execute(
        sa.update(_requests)
        .where(r.status == "pending", r.expires_at < now)
        .values(status="expired")
    )
    _close_duplicates(conn, now)
    op.create_index(
        "ux_approval_requests_pending",
        "approval_requests",
        ["model_id", "environment", "version"],
        unique=True,
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def _close_duplicates(conn: sa.Connection, now: float) -> None:
    r = _requests.c
    rows = conn.execute(
        sa.select(r.id, r.model_id, r.environment, r.version)
        .where(r.status == "pending")
        .order_by(r.id)
    ).all()
    kept: dict[tuple[int, str, int], int] = {}
    for row in rows:
        key = (row.model_id, row.environment, row.version)
        if key not in kept:
            kept[key] = row.id
            continue
        reason = (
            f"duplicate of request {kept[key]}, which stays open: only one request per "
            "version and environment may wait (closed when the store was upgraded)"
        )
        conn.execute(
            sa.update(_requests)
            .where(r.id == row.id)
            .values(status="rejected", decided_by=_ACTOR, decided_at=now, decision_reason=reason)
        )
        held = conn.execute(
            sa.select(_slots.c.version).where(
                _slots.c.model_id == row.model_id, _slots.c.environment == row.environment
            )
        ).scalar()
        conn.execute(
            sa.insert(_events).values(
                model_id=row.model_id,
                environment=row.environment,
                action="reject",
                from_version=held,
                to_version=row.version,
                actor=_ACTOR,
                reason=reason,
                gates="[]",
                forced=False,
                request_id=row.id,
                created_at=now,
            )
        )


def downgrade() -> None:
    op.drop_index("ux_approval_requests_pending", table_name="approval_requests")
    op.drop_column("approval_requests", "if_holds")

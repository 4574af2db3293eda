"""The reads an MLflow import plans with: which runs a store holds already."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from modelrail.store import tables as t
from modelrail.store.db import Database

_CHUNK = 500  # ids per query, well within SQLite's and PostgreSQL's limits on bound values


def present_run_ids(db: Database, run_ids: Sequence[str]) -> set[str]:
    """Which of ``run_ids`` this store holds, in a query per 500 ids (an import that
    resumes over 10,000 runs must not ask one by one)."""
    found: set[str] = set()
    with db.read() as conn:
        for start in range(0, len(run_ids), _CHUNK):
            chunk = list(run_ids[start : start + _CHUNK])
            found.update(conn.execute(select(t.runs.c.id).where(t.runs.c.id.in_(chunk))).scalars())
    return found

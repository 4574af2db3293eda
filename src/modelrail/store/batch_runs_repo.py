"""Batch run records: created when a run starts, updated as it goes and when it ends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, select, update

from modelrail.entities import BatchRun
from modelrail.errors import BatchRunNotFoundError, InvalidInputError
from modelrail.store import tables as t
from modelrail.store.db import Database

_MIN_PREFIX = 4


class BatchRunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, run: BatchRun) -> None:
        with self.db.write() as conn:
            conn.execute(t.batch_runs.insert(), _row(run))

    def update(self, run_id: str, **values: Any) -> None:
        r = t.batch_runs
        with self.db.write() as conn:
            conn.execute(update(r).where(r.c.id == run_id).values(**values))

    def update_if_unchanged(self, seen: BatchRun, **values: Any) -> bool:
        """Update the run only if it is still running with the heartbeat ``seen`` holds:
        what another process decided meanwhile (a resume took it up, or someone else
        finished its record) wins. Whether the record was updated."""
        r = t.batch_runs
        unchanged = (r.c.status == "running", r.c.heartbeat_at == seen.heartbeat_at)
        query = update(r).where(r.c.id == seen.id, *unchanged).values(**values)
        with self.db.write() as conn:
            return bool(conn.execute(query).rowcount)

    def get(self, run_id: str) -> BatchRun:
        """A run by its id or an unambiguous prefix of at least four characters."""
        r = t.batch_runs
        if len(run_id) < _MIN_PREFIX:
            raise InvalidInputError(
                f"batch run id {run_id!r} is too short: give at least {_MIN_PREFIX} characters"
            )
        query = select(r).where(r.c.id.startswith(run_id, autoescape=True)).limit(2)
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        if not rows:
            raise BatchRunNotFoundError(f"no batch run {run_id!r}: see `modelrail batch history`")
        if len(rows) > 1:
            raise InvalidInputError(f"batch run id {run_id!r} is ambiguous: give more characters")
        return _entity(rows[0])

    def recent(
        self,
        *,
        job: str | None = None,
        model: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[BatchRun]:
        r = t.batch_runs
        query = select(r).order_by(r.c.started_at.desc(), r.c.id).limit(limit)
        if job is not None:
            query = query.where(r.c.job == job)
        if model is not None:
            query = query.where(r.c.model == model)
        if status is not None:
            query = query.where(r.c.status == status)
        with self.db.read() as conn:
            return [_entity(row) for row in conn.execute(query).mappings()]

    def running_for_job(self, job: str) -> list[BatchRun]:
        r = t.batch_runs
        query = select(r).where(r.c.job == job, r.c.status == "running")
        with self.db.read() as conn:
            return [_entity(row) for row in conn.execute(query).mappings()]


def _row(run: BatchRun) -> dict[str, Any]:
    return {name: getattr(run, name) for name in t.batch_runs.c.keys()}  # noqa: SIM118 (column names)


def _entity(row: RowMapping) -> BatchRun:
    return BatchRun(**dict(row))

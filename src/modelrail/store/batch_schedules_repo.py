"""Batch schedules, their leases, and the files each file-arrival trigger has claimed.

Every claim is one compare-and-swap ``UPDATE`` (or an ``INSERT`` against a unique key), so
two scheduler processes on one store never both win: the row count says who did. A lease
names its owner and an expiry time; the owner renews it while the job runs and clears it at
the end, and a lease whose owner died simply expires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import RowMapping, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from modelrail.errors import BatchRunStateError, ModelrailError
from modelrail.store import tables as t
from modelrail.store.db import Database

_IN_CHUNK = 500
log = logging.getLogger("modelrail.scheduler")


@dataclass(frozen=True)
class ScheduleRecord:
    """One ``batch_schedules`` row; ``spec`` is the job as JSON."""

    name: str
    kind: str
    spec: str
    cron: str | None
    timezone: str | None
    file_pattern: str | None
    catch_up: str
    enabled: bool
    next_run_at: float | None
    lease_owner: str | None
    lease_until: float | None
    last_run_id: str | None
    created_by: str
    created_at: float


@dataclass(frozen=True)
class TriggerFile:
    """One ``batch_trigger_files`` row: a file (as it was when claimed) and what became of it."""

    id: int
    schedule: str
    path: str
    fingerprint: str
    status: str  # claimed | done | failed
    run_id: str | None
    claimed_by: str
    claimed_at: float
    lease_until: float


class BatchScheduleRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- schedules -----------------------------------------------------------------------

    def save(self, record: ScheduleRecord, *, replace: bool = False) -> None:
        """Create the schedule; with ``replace``, overwrite the definition of an existing one
        (its lease and last run are kept, so a run in progress ends normally)."""
        s = t.batch_schedules
        values = _schedule_row(record)
        with self.db.write() as conn:
            self.db.lock(conn, f"batch-schedule:{record.name}")
            exists = conn.execute(select(s.c.name).where(s.c.name == record.name)).first()
            if exists is None:
                conn.execute(s.insert(), values)
                return
            if not replace:
                raise BatchRunStateError(
                    f"a batch schedule named {record.name!r} exists already: pass {{replace}} to "
                    f"change it, or `modelrail batch unschedule {record.name}` first",
                    params=("replace",),
                )
            kept = ("name", "lease_owner", "lease_until", "last_run_id", "created_at")
            changed = {k: v for k, v in values.items() if k not in kept}
            conn.execute(update(s).where(s.c.name == record.name).values(**changed))

    def get(self, name: str) -> ScheduleRecord | None:
        s = t.batch_schedules
        with self.db.read() as conn:
            row = conn.execute(select(s).where(s.c.name == name)).mappings().first()
        return None if row is None else _schedule(row)

    def schedules(self) -> list[ScheduleRecord]:
        s = t.batch_schedules
        with self.db.read() as conn:
            rows = conn.execute(select(s).order_by(s.c.name)).mappings().all()
        return [_schedule(row) for row in rows]

    def delete(self, name: str) -> bool:
        """Delete the schedule and (by cascade) its claimed-file records."""
        s, f = t.batch_schedules, t.batch_trigger_files
        with self.db.write() as conn:
            conn.execute(delete(f).where(f.c.schedule == name))
            return conn.execute(delete(s).where(s.c.name == name)).rowcount == 1

    # -- leases --------------------------------------------------------------------------

    def claim_fire(
        self,
        name: str,
        *,
        expected_next: float,
        new_next: float | None,
        owner: str,
        now: float,
        lease_until: float | None,
    ) -> bool:
        """Move ``next_run_at`` from ``expected_next`` to ``new_next`` if nobody did first and
        no live lease is held; with ``lease_until``, also take the lease for the run."""
        s = t.batch_schedules
        values: dict[str, Any] = {"next_run_at": new_next}
        if lease_until is not None:
            values.update(lease_owner=owner, lease_until=lease_until)
        query = (
            update(s)
            .where(
                s.c.name == name,
                s.c.enabled.is_(True),
                s.c.next_run_at == expected_next,
                _lease_free(now),
            )
            .values(**values)
        )
        with self.db.write() as conn:
            return conn.execute(query).rowcount == 1

    def acquire(self, name: str, *, owner: str, now: float, lease_until: float) -> bool:
        """Take the schedule's lease if no live one is held (file triggers)."""
        s = t.batch_schedules
        query = (
            update(s)
            .where(s.c.name == name, s.c.enabled.is_(True), _lease_free(now))
            .values(lease_owner=owner, lease_until=lease_until)
        )
        with self.db.write() as conn:
            return conn.execute(query).rowcount == 1

    def renew(self, name: str, *, owner: str, lease_until: float) -> bool:
        """Extend our lease; False when it is no longer ours (expired and taken, or deleted)."""
        s = t.batch_schedules
        query = (
            update(s)
            .where(s.c.name == name, s.c.lease_owner == owner)
            .values(lease_until=lease_until)
        )
        with self.db.write() as conn:
            return conn.execute(query).rowcount == 1

    def release(self, name: str, *, owner: str, last_run_id: str | None = None) -> bool:
        """Give our lease back, recording the run it produced (if any)."""
        s = t.batch_schedules
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if last_run_id is not None:
            values["last_run_id"] = last_run_id
        query = update(s).where(s.c.name == name, s.c.lease_owner == owner).values(**values)
        with self.db.write() as conn:
            return conn.execute(query).rowcount == 1

    # -- trigger files -------------------------------------------------------------------

    def known_files(self, schedule: str, fingerprints: Iterable[str]) -> dict[str, TriggerFile]:
        """The records among ``fingerprints`` this schedule has already claimed."""
        f = t.batch_trigger_files
        wanted = list(dict.fromkeys(fingerprints))
        found: dict[str, TriggerFile] = {}
        with self.db.read() as conn:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                query = select(f).where(f.c.schedule == schedule, f.c.fingerprint.in_(chunk))
                for row in conn.execute(query).mappings():
                    found[row["fingerprint"]] = _file(row)
        return found

    def claim_file(
        self,
        schedule: str,
        *,
        path: str,
        fingerprint: str,
        owner: str,
        now: float,
        lease_until: float,
    ) -> int | None:
        """Claim a file never claimed before; None when another scheduler has it (the unique
        key on schedule and fingerprint decides) or the schedule is gone."""
        row = {
            "schedule": schedule,
            "path": path,
            "fingerprint": fingerprint,
            "status": "claimed",
            "run_id": None,
            "claimed_by": owner,
            "claimed_at": now,
            "lease_until": lease_until,
        }
        try:
            with self.db.write() as conn:
                key = conn.execute(t.batch_trigger_files.insert(), row).inserted_primary_key
        except IntegrityError:
            return None
        assert key is not None
        return int(key[0])

    def reclaim_file(self, file_id: int, *, owner: str, now: float, lease_until: float) -> bool:
        """Take over a file whose claimer's lease expired before it finished."""
        f = t.batch_trigger_files
        query = (
            update(f)
            .where(f.c.id == file_id, f.c.status == "claimed", f.c.lease_until < now)
            .values(claimed_by=owner, claimed_at=now, lease_until=lease_until)
        )
        with self.db.write() as conn:
            return conn.execute(query).rowcount == 1

    def renew_file(self, file_id: int, *, owner: str, lease_until: float) -> bool:
        f = t.batch_trigger_files
        query = (
            update(f)
            .where(f.c.id == file_id, f.c.claimed_by == owner, f.c.status == "claimed")
            .values(lease_until=lease_until)
        )
        with self.db.write() as conn:
            return conn.execute(query).rowcount == 1

    def finish_file(self, file_id: int, *, owner: str, status: str, run_id: str | None) -> bool:
        """Record the outcome (``done`` or ``failed``) of our claim."""
        f = t.batch_trigger_files
        query = (
            update(f)
            .where(f.c.id == file_id, f.c.claimed_by == owner, f.c.status == "claimed")
            .values(status=status, run_id=run_id)
        )
        with self.db.write() as conn:
            return conn.execute(query).rowcount == 1

    def abandon_file(self, file_id: int, *, owner: str) -> bool:
        """Let our claim expire at once (we were interrupted): the next scheduler retries it."""
        f = t.batch_trigger_files
        query = (
            update(f)
            .where(f.c.id == file_id, f.c.claimed_by == owner, f.c.status == "claimed")
            .values(lease_until=0.0)
        )
        with self.db.write() as conn:
            return conn.execute(query).rowcount == 1

    def files(self, schedule: str, *, limit: int = 1000) -> list[TriggerFile]:
        """The schedule's claimed files, newest claim first."""
        f = t.batch_trigger_files
        query = (
            select(f)
            .where(f.c.schedule == schedule)
            .order_by(f.c.claimed_at.desc(), f.c.id.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [_file(row) for row in conn.execute(query).mappings()]

    def file_counts(self) -> dict[str, dict[str, int]]:
        """Per schedule, how many claimed files are claimed, done and failed."""
        f = t.batch_trigger_files
        query = select(f.c.schedule, f.c.status, func.count()).group_by(f.c.schedule, f.c.status)
        counts: dict[str, dict[str, int]] = {}
        with self.db.read() as conn:
            for schedule, status, count in conn.execute(query):
                counts.setdefault(str(schedule), {})[str(status)] = int(count)
        return counts


class LeaseRenewing(Protocol):
    """What ``LeaseKeeper`` renews through: this repository, or a team server's routes."""

    def renew(self, name: str, *, owner: str, lease_until: float) -> bool: ...

    def renew_file(self, file_id: int, *, owner: str, lease_until: float) -> bool: ...


class LeaseKeeper:
    """Renews a schedule's lease (and a file's claim) from a thread while its job runs."""

    def __init__(
        self,
        repo: LeaseRenewing,
        name: str,
        *,
        owner: str,
        clock: Callable[[], float],
        lease: float,
    ) -> None:
        self.repo = repo
        self.name = name
        self.owner = owner
        self.clock = clock
        self.lease = lease

    @contextmanager
    def renewing(self, file_id: int | None = None) -> Iterator[None]:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._loop, args=(stop, file_id), name="scheduler-lease", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _loop(self, stop: threading.Event, file_id: int | None) -> None:
        warned = False
        while not stop.wait(max(self.lease / 4, 0.05)):
            until = self.clock() + self.lease
            try:
                kept = self.repo.renew(self.name, owner=self.owner, lease_until=until)
                if file_id is not None:
                    kept &= self.repo.renew_file(file_id, owner=self.owner, lease_until=until)
            except ModelrailError as exc:
                log.warning("scheduler: %s: could not renew the lease: %s", self.name, exc.message)
                continue
            if not kept and not warned:
                warned = True
                log.warning(
                    "scheduler: %s: lost the lease (the schedule was removed, or this scheduler "
                    "stalled past it); the run goes on",
                    self.name,
                )


def _lease_free(now: float) -> Any:
    s = t.batch_schedules
    return or_(s.c.lease_until.is_(None), s.c.lease_until < now)


def _schedule_row(record: ScheduleRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in t.batch_schedules.c.keys()}  # noqa: SIM118


def _schedule(row: RowMapping) -> ScheduleRecord:
    values = dict(row)
    values["enabled"] = bool(values["enabled"])
    return ScheduleRecord(**values)


def _file(row: RowMapping) -> TriggerFile:
    return TriggerFile(**dict(row))

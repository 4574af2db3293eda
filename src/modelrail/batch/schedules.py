"""Named batch jobs that ``modelrail scheduler`` starts: on a cron schedule, or once for each
file that arrives in a folder.

Cron expressions and their time zones are read by ``cron.py``.

Catch-up policy: what a scheduler does with fire times that passed while no scheduler ran
(or while the job's previous run was still going). A fire time is *late* when it passed more
than ``MISFIRE_GRACE_SECONDS`` ago.

- ``once`` (default): however many fire times passed, run once now, then continue on
  schedule from the next fire time after now.
- ``all``: run once for every fire time that passed, oldest first, one after the other,
  then continue on schedule. At most ``MAX_CATCH_UP_RUNS`` (100) are caught up: when more
  were missed, the older ones are skipped and a warning says how many.
- ``skip``: never run a late fire time. If the most recent one is within the grace period it
  runs (a scheduler restarted a minute after 02:00 still runs the 02:00 job); every other
  passed fire time is skipped, and the schedule continues at the next fire time after now.

A file-arrival schedule has no fire times: every file that matches its pattern and that the
schedule has not processed yet is scored once, including files that arrived while no
scheduler ran and files that were already there when the schedule was created.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from modelrail.batch.cron import DEFAULT_TIMEZONE, CronTiming
from modelrail.batch.spec import JobSpec
from modelrail.entities import BatchRun
from modelrail.errors import BatchInputError, BatchRunNotFoundError, ScheduleNotFoundError
from modelrail.object_store import is_object_store
from modelrail.refs import Ref, validate_name
from modelrail.store.batch_schedules_repo import ScheduleRecord

if TYPE_CHECKING:
    from modelrail.batch.host import ScheduleHost

Kind = Literal["cron", "files"]
CatchUp = Literal["once", "all", "skip"]
CATCH_UP_POLICIES: tuple[CatchUp, ...] = ("once", "all", "skip")
MAX_CATCH_UP_RUNS = 100
MISFIRE_GRACE_SECONDS = 300.0


@dataclass(frozen=True)
class Schedule:
    name: str
    kind: Kind
    spec: JobSpec
    cron: str | None
    timezone: str | None
    file_pattern: str | None
    catch_up: str
    enabled: bool
    next_run_at: float | None
    last_run_id: str | None
    created_by: str
    created_at: float
    lease_owner: str | None = None
    lease_until: float | None = None

    def running(self, now: float) -> bool:
        """A scheduler holds a live lease: the job is running (or starting) somewhere."""
        return self.lease_until is not None and self.lease_until >= now


@dataclass(frozen=True)
class ScheduleStatus:
    """A schedule with its last run, for ``modelrail batch schedules``."""

    schedule: Schedule
    last_run: BatchRun | None
    running: bool
    files: dict[str, int]


@dataclass(frozen=True)
class CronStep:
    """What a scheduler does with a due cron schedule: maybe one run, and where
    ``next_run_at`` moves to."""

    run: bool
    fire_time: float | None
    next_run_at: float | None
    skipped: int
    note: str


def plan_cron(
    schedule: Schedule, timing: CronTiming, now: float, *, grace: float = MISFIRE_GRACE_SECONDS
) -> CronStep | None:
    """The catch-up policy (see the module docstring) for ``schedule`` at ``now``; None when
    nothing is due yet."""
    due_at = schedule.next_run_at
    if due_at is None or due_at > now:
        return None
    due = timing.fires(due_at, now, limit=MAX_CATCH_UP_RUNS + 1)
    if not due:
        return CronStep(False, None, timing.next_after(now), 0, "")
    if len(due) == 1 and now - due[0] <= grace:
        return CronStep(True, due[0], timing.next_after(due[0]), 0, "")
    passed = f"{_count(len(due), MAX_CATCH_UP_RUNS)} fire time(s) passed since "
    late = passed + timing.describe(due[0])
    if schedule.catch_up == "all":
        if len(due) > MAX_CATCH_UP_RUNS:
            kept = timing.latest(due_at, now, MAX_CATCH_UP_RUNS)
            skipped = len(timing.fires(due_at, kept[0], limit=100_000)) - 1
            note = (
                f"{late}: catching up at most {MAX_CATCH_UP_RUNS} runs (catch-up all), "
                f"skipping the {_count(skipped, 99_999)} before {timing.describe(kept[0])}"
            )
            return CronStep(False, None, kept[0], skipped, note)
        following = due[1] if len(due) > 1 else timing.next_after(due[0])
        note = f"catching up the run of {timing.describe(due[0])} (catch-up all)"
        return CronStep(True, due[0], following, 0, note)
    if schedule.catch_up == "skip":
        latest = timing.latest(due_at, now, 1)[0]
        if now - latest <= grace:
            note = f"{late}: running the latest only, skipping the others (catch-up skip)"
            return CronStep(True, latest, timing.next_after(latest), len(due) - 1, note)
        note = f"{late}: skipping them (catch-up skip)"
        return CronStep(False, None, timing.next_after(now), len(due), note)
    note = f"{late}: running once now (catch-up once)"
    return CronStep(True, due[-1], timing.next_after(now), len(due) - 1, note)


# -- create, list, get, delete ------------------------------------------------------------


def create_schedule(
    client: ScheduleHost,
    name: str,
    spec: JobSpec,
    *,
    cron: str | None = None,
    timezone: str | None = None,
    file_pattern: str | None = None,
    catch_up: str | None = None,
    replace_existing: bool = False,
    now: float | None = None,
) -> Schedule:
    """Store a schedule: ``cron`` (with ``timezone``, default UTC, and ``catch_up``, default
    ``once``) or ``file_pattern`` (a glob, or a folder for every file in it; each new
    matching file is scored on its own, as the job's only input). Relative input paths and
    patterns are made absolute here, as the scheduler may run in another folder; relative
    outputs stay under the project root, as for every batch run."""
    validate_name("schedule", name)
    Ref.parse(spec.reference)
    created = time.time() if now is None else now
    if (cron is None) == (file_pattern is None):
        raise BatchInputError(
            "a schedule needs either {cron} (an expression) or {file_pattern} (a glob)",
            params=("cron", "file_pattern"),
        )
    if catch_up is not None and catch_up not in CATCH_UP_POLICIES:
        raise BatchInputError(
            f"{{catch_up}} must be 'once', 'all' or 'skip', not {catch_up!r}",
            params=("catch_up",),
        )
    if cron is not None:
        zone = timezone or DEFAULT_TIMEZONE
        timing = CronTiming(cron, zone)
        next_run_at = timing.next_after(created)
        if next_run_at is None:
            raise BatchInputError(f"cron expression {cron!r} never fires (no such date)")
        record = _record(name, "cron", _absolute(spec), created, client.user)
        record = replace(record, cron=cron, timezone=zone, catch_up=catch_up or "once")
        record = replace(record, next_run_at=next_run_at)
    else:
        assert file_pattern is not None
        if timezone is not None:
            raise BatchInputError(
                "{timezone} applies to {cron} schedules only", params=("timezone", "cron")
            )
        if catch_up not in (None, "all"):
            raise BatchInputError(
                "{catch_up} applies to {cron} schedules: a file trigger scores every new file "
                "once, including files that arrived while no scheduler ran",
                params=("catch_up", "cron"),
            )
        if spec.query is not None:
            raise BatchInputError(
                "{file_pattern} reads the new files: leave out {query}",
                params=("query", "file_pattern"),
            )
        if is_object_store(file_pattern):
            raise BatchInputError(
                f"{{file_pattern}} watches local or mounted folders, not {file_pattern!r}: "
                "schedule object-store inputs with {cron}",
                params=("file_pattern", "cron"),
            )
        pattern = _absolute_path(file_pattern)
        if not any(char in pattern for char in "*?[") and (
            os.path.isdir(pattern) or file_pattern.endswith(("/", os.sep))
        ):
            pattern = os.path.join(pattern, "*")  # a folder: every file that arrives in it
        files_spec = _absolute(replace(spec, inputs=(pattern,)))
        record = replace(
            _record(name, "files", files_spec, created, client.user),
            file_pattern=pattern,
            catch_up="all",
        )
    client.schedule_records.save(record, replace=replace_existing)
    return get_schedule(client, name)


def get_schedule(client: ScheduleHost, name: str) -> Schedule:
    record = client.schedule_records.get(name)
    if record is None:
        raise ScheduleNotFoundError(
            f"no batch schedule named {name!r}: see `modelrail batch schedules`"
        )
    return to_schedule(record)


def list_schedules(client: ScheduleHost) -> list[Schedule]:
    return [to_schedule(record) for record in client.schedule_records.schedules()]


def delete_schedule(client: ScheduleHost, name: str) -> Schedule:
    """Remove a schedule and its record of processed files; a run in progress goes on."""
    schedule = get_schedule(client, name)
    if not client.schedule_records.delete(name):
        raise ScheduleNotFoundError(f"no batch schedule named {name!r}: it was just removed")
    return schedule


def schedule_statuses(client: ScheduleHost, now: float | None = None) -> list[ScheduleStatus]:
    """Every schedule with its last run (and, for file triggers, file counts by status)."""
    at = time.time() if now is None else now
    repo = client.schedule_records
    runs = client.batch_records
    counts = repo.file_counts()
    statuses = []
    for record in repo.schedules():
        schedule = to_schedule(record)
        last_run = None
        if schedule.last_run_id is not None:
            try:
                last_run = runs.get(schedule.last_run_id)
            except BatchRunNotFoundError:
                last_run = None
        files = counts.get(schedule.name, {}) if schedule.kind == "files" else {}
        statuses.append(ScheduleStatus(schedule, last_run, schedule.running(at), files))
    return statuses


def to_schedule(record: ScheduleRecord) -> Schedule:
    kind: Kind = "files" if record.kind == "files" else "cron"
    return Schedule(
        name=record.name,
        kind=kind,
        spec=JobSpec.from_json(record.spec),
        cron=record.cron,
        timezone=record.timezone,
        file_pattern=record.file_pattern,
        catch_up=record.catch_up,
        enabled=record.enabled,
        next_run_at=record.next_run_at,
        last_run_id=record.last_run_id,
        created_by=record.created_by,
        created_at=record.created_at,
        lease_owner=record.lease_owner,
        lease_until=record.lease_until,
    )


def timing_of(schedule: Schedule) -> CronTiming:
    if schedule.cron is None:
        raise BatchInputError(f"batch schedule {schedule.name!r} has no cron expression")
    return CronTiming(schedule.cron, schedule.timezone or DEFAULT_TIMEZONE)


def _record(name: str, kind: str, spec: JobSpec, created: float, user: str) -> ScheduleRecord:
    return ScheduleRecord(
        name=name,
        kind=kind,
        spec=spec.to_json(),
        cron=None,
        timezone=None,
        file_pattern=None,
        catch_up="once",
        enabled=True,
        next_run_at=None,
        lease_owner=None,
        lease_until=None,
        last_run_id=None,
        created_by=user,
        created_at=created,
    )


def _absolute(spec: JobSpec) -> JobSpec:
    if not spec.inputs:
        return spec
    return replace(spec, inputs=tuple(_absolute_path(path) for path in spec.inputs))


def _absolute_path(path: str) -> str:
    if not path.strip():
        raise BatchInputError("an input path or file pattern is empty")
    if is_object_store(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def _count(value: int, cap: int) -> str:
    return f"more than {cap}" if value > cap else str(value)

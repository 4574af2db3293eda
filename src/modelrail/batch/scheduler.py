"""``modelrail scheduler``: start due cron jobs and score newly arrived files.

Any number of schedulers may share one store. Each pass (``tick``) reads the schedules and
claims work with compare-and-swap updates, so a job is never started twice at once: a
cron fire time is taken by moving the schedule's ``next_run_at`` from the value read to the
next one while taking the schedule's lease; a file is taken by inserting its fingerprint
(unique per schedule). The lease is renewed while the job runs and released at the end; a
scheduler killed mid-run leaves a lease (and a file claim) that expires after
``lease_seconds``, and then another scheduler carries on. A job is also not started while a
live (heartbeating) ``running`` record of it exists, such as a manual ``batch run --job``.

Jobs run one at a time in a scheduler, in the thread that calls ``tick``; run more scheduler
processes for more parallelism (a file trigger still scores its files one at a time).

File triggers take the files that have settled (see ``arrivals.py``) and are not yet known,
one at a time. A file whose run fails is recorded as ``failed`` and not retried until it
changes (``touch`` it to retry).

Each pass also runs monitoring upkeep when it is due (``monitoring.upkeep``): checks of the
environments that log predictions, with notifications when their alerts change, and
removal of logged files past their retention, in the monitoring folder of this machine,
after the due jobs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from modelrail.batch.arrivals import SETTLE_SECONDS, Arrival, ArrivalWatch
from modelrail.batch.heartbeat import STALE_AFTER_SECONDS
from modelrail.batch.schedules import (
    MISFIRE_GRACE_SECONDS,
    Schedule,
    plan_cron,
    timing_of,
    to_schedule,
)
from modelrail.batch.spec import JobSpec
from modelrail.entities import BatchRun
from modelrail.errors import ModelrailError
from modelrail.store.batch_schedules_repo import (
    LeaseKeeper,
    ScheduleRecord,
    TriggerFile,
)

if TYPE_CHECKING:
    from modelrail.batch.host import ScheduleHost
    from modelrail.monitoring.upkeep import MonitoringUpkeep

log = logging.getLogger("modelrail.scheduler")

LEASE_SECONDS = 120.0
# A ``running`` batch run whose heartbeat is older than this belongs to a dead process.
STALE_RUN_SECONDS = STALE_AFTER_SECONDS


class RunJob(Protocol):
    """What runs one job: ``modelrail.batch.runner.run_batch``, or a stand-in in tests."""

    def __call__(
        self, client: ScheduleHost, spec: JobSpec, *, job: str | None = ..., trigger: str = ...
    ) -> BatchRun: ...


@dataclass(frozen=True)
class JobOutcome:
    """One job a scheduler started, and how it ended."""

    schedule: str
    trigger: Literal["schedule", "file"]
    status: Literal["succeeded", "failed"]
    run_id: str | None
    fire_time: float | None = None
    path: str | None = None
    error: str | None = None


def _run_batch(
    client: ScheduleHost, spec: JobSpec, *, job: str | None = None, trigger: str = "manual"
) -> BatchRun:
    from modelrail.batch.runner import run_batch

    return run_batch(client, spec, job=job, trigger=trigger)


class Scheduler:
    """Runs due jobs of every enabled schedule in the store; see the module docstring."""

    def __init__(
        self,
        client: ScheduleHost,
        *,
        run_job: RunJob | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        grace_seconds: float = MISFIRE_GRACE_SECONDS,
        settle_seconds: float = SETTLE_SECONDS,
        stale_run_seconds: float = STALE_RUN_SECONDS,
        monitoring: MonitoringUpkeep | Literal["auto"] | None = "auto",
    ) -> None:
        """``monitoring``: the monitoring upkeep to run between jobs; "auto" builds it from a
        client that offers monitoring, None runs none."""
        self.client = client
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._run_job: RunJob = run_job or _run_batch
        self._clock = clock
        self._lease = lease_seconds
        self._grace = grace_seconds
        self._stale = stale_run_seconds
        self._repo = client.schedule_records
        self._runs = client.batch_records
        self._arrivals = ArrivalWatch(settle_seconds)
        self._waiting_on: set[str] = set()
        self.next_due: float | None = None
        self.monitoring = _monitoring_of(client) if monitoring == "auto" else monitoring

    # -- the loop ----------------------------------------------------------------------

    def run_forever(self, stop: threading.Event, poll: float = 30.0) -> None:
        """Tick until ``stop`` is set; between ticks, wait ``poll`` seconds or until the next
        cron fire time, whichever comes first. No error ends the loop."""
        log.info("scheduler %s: started, polling every %g s", self.owner, poll)
        while not stop.is_set():
            try:
                self.tick(stop=stop)
            except ModelrailError as exc:
                log.error("scheduler: %s", exc.message)
            except Exception:
                log.exception("scheduler: unexpected error; carrying on")
            wait = poll
            if self.next_due is not None:
                wait = min(poll, max(self.next_due - self._clock(), 0.0))
            stop.wait(wait)
        log.info("scheduler %s: stopped", self.owner)

    def tick(
        self, now: float | None = None, *, stop: threading.Event | None = None
    ) -> list[JobOutcome]:
        """One pass: start every due cron job and score every settled new file, one job at
        a time. ``now`` fixes the time for the whole pass (tests); by default the clock is
        read before each claim."""
        outcomes: list[JobOutcome] = []
        self.next_due = None
        for record in self._repo.schedules():
            if stop is not None and stop.is_set():
                break
            if not record.enabled:
                continue
            try:
                if record.kind == "files":
                    outcomes += self._files(record, now, stop)
                else:
                    outcomes += self._cron(record, now, stop)
            except ModelrailError as exc:
                log.error("scheduler: %s: %s", record.name, exc.message)
            except Exception:
                log.exception(
                    "scheduler: %s: unexpected error; going on with the others", record.name
                )
        if stop is None or not stop.is_set():
            self._monitor(now)
        return outcomes

    def _monitor(self, now: float | None) -> None:
        upkeep = self.monitoring
        if upkeep is None:
            return
        try:
            upkeep.run_due(self._now(now))
        except ModelrailError as exc:
            log.error("scheduler: monitoring: %s", exc.message)
        except Exception:
            log.exception("scheduler: monitoring: unexpected error; carrying on")
        if upkeep.next_due is not None:
            self._note_due(upkeep.next_due)

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    # -- cron ----------------------------------------------------------------------------

    def _cron(
        self, record: ScheduleRecord, now: float | None, stop: threading.Event | None
    ) -> list[JobOutcome]:
        outcomes: list[JobOutcome] = []
        current: ScheduleRecord | None = record
        while current is not None and (stop is None or not stop.is_set()):
            at = self._now(now)
            if current.next_run_at is None:
                return outcomes
            if current.next_run_at > at:
                self._note_due(current.next_run_at)
                return outcomes
            if self._busy(current, at):
                return outcomes
            schedule = to_schedule(current)
            step = plan_cron(schedule, timing_of(schedule), at, grace=self._grace)
            if step is None:
                return outcomes
            won = self._repo.claim_fire(
                schedule.name,
                expected_next=current.next_run_at,
                new_next=step.next_run_at,
                owner=self.owner,
                now=at,
                lease_until=at + self._lease if step.run else None,
            )
            if not won:
                return outcomes  # another scheduler took this fire time first
            if step.note:
                (log.info if step.run else log.warning)(
                    "scheduler: %s: %s", schedule.name, step.note
                )
            if step.run:
                outcome = self._execute(schedule, schedule.spec, "schedule", fire=step.fire_time)
                outcomes.append(outcome)
            current = self._repo.get(schedule.name)
        return outcomes

    def _note_due(self, moment: float) -> None:
        self.next_due = moment if self.next_due is None else min(self.next_due, moment)

    def _busy(self, record: ScheduleRecord, at: float) -> bool:
        """The job is running somewhere: a live lease, or a live ``running`` record."""
        if record.lease_until is not None and record.lease_until >= at:
            return True
        live = [
            r for r in self._runs.running_for_job(record.name) if not r.is_stale(at, self._stale)
        ]
        if not live:
            self._waiting_on.discard(record.name)
            return False
        if record.name not in self._waiting_on:
            self._waiting_on.add(record.name)
            log.info(
                "scheduler: %s is due but batch run %s (pid %s on %s) is still running; "
                "waiting for it to end",
                record.name,
                live[0].id[:12],
                live[0].pid,
                live[0].host,
            )
        return True

    # -- files ---------------------------------------------------------------------------

    def _files(
        self, record: ScheduleRecord, now: float | None, stop: threading.Event | None
    ) -> list[JobOutcome]:
        at = self._now(now)
        arrivals = self._arrivals.settled(record.name, record.file_pattern or "", at)
        if not arrivals:
            return []
        known = self._repo.known_files(record.name, [a.fingerprint for a in arrivals])
        todo = [
            a
            for a in arrivals
            if a.fingerprint not in known
            or (known[a.fingerprint].status == "claimed" and known[a.fingerprint].lease_until < at)
        ]
        if not todo or self._busy(record, at):
            return []
        if not self._repo.acquire(
            record.name, owner=self.owner, now=at, lease_until=at + self._lease
        ):
            return []
        schedule = to_schedule(record)
        outcomes: list[JobOutcome] = []
        last_run_id: str | None = None
        try:
            for arrival in todo:
                if stop is not None and stop.is_set():
                    break
                file_id = self._claim(record.name, arrival, known, self._now(now))
                if file_id is None:
                    continue  # another scheduler has it
                spec = dataclasses.replace(schedule.spec, inputs=(arrival.path,))
                outcome = self._execute(schedule, spec, "file", path=arrival.path, file_id=file_id)
                outcomes.append(outcome)
                last_run_id = outcome.run_id or last_run_id
        finally:
            self._release(record.name, last_run_id)
        return outcomes

    def _claim(
        self, schedule: str, arrival: Arrival, known: dict[str, TriggerFile], at: float
    ) -> int | None:
        previous = known.get(arrival.fingerprint)
        until = at + self._lease
        # Hold the schedule's lease for as long as files keep coming.
        self._repo.renew(schedule, owner=self.owner, lease_until=until)
        if previous is not None:  # claimed by a scheduler whose lease expired: take it over
            if not self._repo.reclaim_file(
                previous.id, owner=self.owner, now=at, lease_until=until
            ):
                return None
            message = "scheduler: %s: retrying %s, whose scheduler (%s) stopped before it finished"
            log.warning(message, schedule, arrival.path, previous.claimed_by)
            return previous.id
        return self._repo.claim_file(
            schedule,
            path=arrival.path,
            fingerprint=arrival.fingerprint,
            owner=self.owner,
            now=at,
            lease_until=until,
        )

    # -- running one job -----------------------------------------------------------------

    def _execute(
        self,
        schedule: Schedule,
        spec: JobSpec,
        trigger: Literal["schedule", "file"],
        *,
        fire: float | None = None,
        path: str | None = None,
        file_id: int | None = None,
    ) -> JobOutcome:
        what = f"file {path}" if path is not None else f"fire time {_describe(schedule, fire)}"
        log.info("scheduler: %s: started (%s, %s)", schedule.name, spec.reference, what)
        keeper = LeaseKeeper(
            self._repo, schedule.name, owner=self.owner, clock=self._clock, lease=self._lease
        )
        started = time.time()
        outcome: JobOutcome | None = None
        try:
            with keeper.renewing(file_id):
                outcome = self._call(schedule.name, spec, trigger, started, fire, path)
        finally:
            self._finish(schedule.name, outcome, file_id, cron=trigger == "schedule")
        run = (outcome.run_id or "-")[:12]
        took = time.time() - started
        if outcome.status == "succeeded":
            log.info("scheduler: %s: succeeded in %.1f s (batch run %s)", schedule.name, took, run)
        else:
            message = "scheduler: %s: failed after %.1f s (batch run %s): %s"
            log.error(message, schedule.name, took, run, outcome.error)
        return outcome

    def _call(
        self,
        name: str,
        spec: JobSpec,
        trigger: Literal["schedule", "file"],
        started: float,
        fire: float | None,
        path: str | None,
    ) -> JobOutcome:
        try:
            run = self._run_job(self.client, spec, job=name, trigger=trigger)
        except Exception as exc:
            if isinstance(exc, ModelrailError):
                message = exc.message
            else:
                log.exception("scheduler: %s: unexpected error", name)
                message = f"{type(exc).__name__}: {exc}"
            run_id = self._failed_run_id(name, started)
            return JobOutcome(name, trigger, "failed", run_id, fire, path, message)
        return JobOutcome(name, trigger, "succeeded", run.id, fire, path)

    def _failed_run_id(self, name: str, started: float) -> str | None:
        """The run record the failed job left, if it got as far as making one."""
        try:
            recent = self._runs.recent(job=name, limit=5)
        except ModelrailError:
            return None
        host, pid = socket.gethostname(), os.getpid()
        for run in recent:
            if run.host == host and run.pid == pid and run.started_at >= started - 1.0:
                return run.id
        return None

    def _finish(
        self, name: str, outcome: JobOutcome | None, file_id: int | None, *, cron: bool
    ) -> None:
        try:
            if file_id is not None:
                if outcome is None:  # interrupted: let the next scheduler retry it
                    self._repo.abandon_file(file_id, owner=self.owner)
                else:
                    status = "done" if outcome.status == "succeeded" else "failed"
                    self._repo.finish_file(
                        file_id, owner=self.owner, status=status, run_id=outcome.run_id
                    )
            if cron:
                self._repo.release(
                    name, owner=self.owner, last_run_id=outcome.run_id if outcome else None
                )
        except ModelrailError as exc:
            log.error("scheduler: %s: could not record the end of the run: %s", name, exc.message)

    def _release(self, name: str, last_run_id: str | None) -> None:
        try:
            self._repo.release(name, owner=self.owner, last_run_id=last_run_id)
        except ModelrailError as exc:
            log.error("scheduler: %s: could not release the lease: %s", name, exc.message)


def _monitoring_of(client: ScheduleHost) -> MonitoringUpkeep | None:
    from modelrail.client_monitoring import MonitoringMethods

    # The logs are on this machine (or a shared [monitoring] root), the registry and the
    # policy wherever the client reads them: a local store or a team server.
    return client.monitoring_upkeep() if isinstance(client, MonitoringMethods) else None


def _describe(schedule: Schedule, fire: float | None) -> str:
    try:
        return timing_of(schedule).describe(fire)
    except ModelrailError:
        return "-"

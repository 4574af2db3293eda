"""Batch scoring through ``Client``: run and resume jobs, read their records, schedule them
and run the scheduler.

``BatchMethods`` is mixed into ``Client`` (it is not used on its own). The batch modules
are imported on first use, so a command that scores nothing does not load Arrow.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from modelrail.batch.host import ScheduleHost, ScheduleRecords
    from modelrail.batch.records import BatchRecords
    from modelrail.batch.runner import Progress
    from modelrail.batch.scheduler import Scheduler
    from modelrail.batch.schedules import Schedule, ScheduleStatus
    from modelrail.batch.spec import JobSpec
    from modelrail.entities import BatchRun
    from modelrail.store.db import Database


class BatchMethods:
    """Batch runs, their history, schedules and the scheduler: the batch half of ``Client``."""

    db: Database

    def run_batch(
        self,
        spec: JobSpec,
        *,
        job: str | None = None,
        trigger: str = "manual",
        progress: Progress | None = None,
    ) -> BatchRun:
        """Score ``spec``'s input with the version ``spec.reference`` names now and write the
        predictions exactly once; ``progress(rows, total)`` is called as rows are scored."""
        from modelrail.batch.runner import run_batch

        return run_batch(self._client(), spec, job=job, trigger=trigger, progress=progress)

    def resume_batch(
        self,
        run_id: str,
        *,
        output: str | None = None,
        query_url: str | None = None,
        progress: Progress | None = None,
    ) -> BatchRun:
        """Finish a killed or failed batch run (id or a prefix of 4+ characters) with the
        model version it started with. A run record keeps no password: ``output`` and
        ``query_url`` give a URL that had one again."""
        from modelrail.batch.runner import resume_batch

        return resume_batch(
            self._client(), run_id, output=output, query_url=query_url, progress=progress
        )

    def batch_runs(
        self,
        *,
        job: str | None = None,
        model: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[BatchRun]:
        """Batch runs, newest first, optionally only those of a scheduled ``job``, a
        ``model`` or with a ``status`` (running, succeeded, failed)."""
        return self._batch_records().recent(job=job, model=model, status=status, limit=limit)

    def batch_run(self, run_id: str) -> BatchRun:
        """One batch run by its id or an unambiguous prefix of 4+ characters."""
        return self._batch_records().get(run_id)

    def schedule_batch(
        self,
        name: str,
        spec: JobSpec,
        *,
        cron: str | None = None,
        timezone: str | None = None,
        file_pattern: str | None = None,
        catch_up: str | None = None,
        replace: bool = False,
    ) -> Schedule:
        """Store a schedule that ``scheduler()`` runs: on ``cron`` (in ``timezone``, with the
        ``catch_up`` policy) or once for each new file matching ``file_pattern``. A schedule
        of the same name is an error unless ``replace``."""
        from modelrail.batch.schedules import create_schedule

        return create_schedule(
            self._client(),
            name,
            spec,
            cron=cron,
            timezone=timezone,
            file_pattern=file_pattern,
            catch_up=catch_up,
            replace_existing=replace,
        )

    def batch_schedules(self) -> list[ScheduleStatus]:
        """Every batch schedule with its last run (and, for file triggers, file counts)."""
        from modelrail.batch.schedules import schedule_statuses

        return schedule_statuses(self._client())

    def unschedule_batch(self, name: str) -> Schedule:
        """Remove a batch schedule (a run in progress finishes); the removed schedule."""
        from modelrail.batch.schedules import delete_schedule

        return delete_schedule(self._client(), name)

    def scheduler(self) -> Scheduler:
        """A scheduler for this store: ``tick()`` runs what is due now, ``run_forever``
        keeps running due jobs until stopped."""
        from modelrail.batch.scheduler import Scheduler

        return Scheduler(self._client())

    @property
    def schedule_records(self) -> ScheduleRecords:
        """The batch schedules in the store, with their leases and claimed files."""
        from modelrail.store.batch_schedules_repo import BatchScheduleRepository

        return BatchScheduleRepository(self.db)

    @property
    def batch_records(self) -> BatchRecords:
        """Where batch runs are recorded: the store's table."""
        from modelrail.store.batch_runs_repo import BatchRunRepository

        return BatchRunRepository(self.db)

    def _batch_records(self) -> BatchRecords:
        """The batch run records, with ``running`` records of runs that died and were
        replaced since marked failed (they can never be resumed)."""
        from modelrail.batch.heartbeat import expire_replaced_runs

        records = self.batch_records
        expire_replaced_runs(records, time.time())
        return records

    def _client(self) -> ScheduleHost:
        return cast("ScheduleHost", self)  # mixed into Client, which is one

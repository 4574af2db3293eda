"""A running batch run's signs of life: its record is beaten every few seconds, so that a
``running`` record whose beat stopped is known to belong to a killed process (and may be
resumed or superseded), and the input's fingerprint is recorded as soon as it is known.

The beat is a lease, and what becomes of a run whose lease ran out is decided here: a run
killed after its output committed is recorded as succeeded (``committed_record``); running
the same job again supersedes a dead run (``supersede_dead_runs``); a run that a later run
of the same output and input has replaced is marked failed, saying so
(``expire_replaced_runs``), instead of staying ``running`` for good.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelrail.batch.records import BatchRecords
from modelrail.entities import BatchRun
from modelrail.errors import BatchRunNotFoundError, InvalidInputError, ModelrailError

if TYPE_CHECKING:
    from modelrail.batch.sinks import Committed, Sink
    from modelrail.batch.sources import Source

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0


class Heartbeat:
    """Beats the run's record while it works; records the input fingerprint once known."""

    def __init__(
        self,
        repo: BatchRecords,
        run_id: str,
        source: Source,
        clock: Callable[[], float],
    ) -> None:
        self.repo = repo
        self.run_id = run_id
        self.source = source
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="batch-heartbeat", daemon=True)
        self._fingerprint = threading.Thread(
            target=self._save_fingerprint, name="batch-fingerprint", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        self._fingerprint.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.repo.update(self.run_id, heartbeat_at=self.clock())
            except ModelrailError:
                continue  # the store is briefly unreachable: the next beat tries again

    def _save_fingerprint(self) -> None:
        """Recorded as soon as it is known, so a resume can tell a changed input."""
        try:
            fingerprint = self.source.fingerprint()
            if not self._stop.is_set():
                self.repo.update(self.run_id, input_fingerprint=fingerprint)
        except ModelrailError:
            return  # the end of the run records it, or the run failed anyway


def replacing_run(repo: BatchRecords, record: BatchRun) -> BatchRun | None:
    """The run of the same output and input, started after ``record``, that has succeeded
    since (None: there is none). Resuming ``record`` would overwrite its newer rows."""
    for other in repo.recent(status="succeeded", limit=1000):
        same_input = not record.input_fingerprint or (
            other.input_fingerprint == record.input_fingerprint
        )
        if other.output == record.output and other.started_at > record.started_at and same_input:
            return other
    return None


def expire_replaced_runs(repo: BatchRecords, now: float) -> None:
    """Mark failed every ``running`` record whose lease has run out and whose run was
    replaced by a later run of the same output and input: its process is gone, and it can
    never be resumed. The error says which run replaced it and when its process stopped."""
    for record in repo.recent(status="running", limit=1000):
        if record.is_stale(now, STALE_AFTER_SECONDS):
            newer = replacing_run(repo, record)
            if newer is not None:
                mark_replaced(repo, record, newer)


def mark_replaced(repo: BatchRecords, record: BatchRun, newer: BatchRun) -> None:
    """``record`` (running, its lease run out) failed: ``newer`` replaced it."""
    stopped = dt.datetime.fromtimestamp(record.heartbeat_at, dt.UTC)
    repo.update_if_unchanged(
        record,
        status="failed",
        finished_at=record.heartbeat_at,  # its last sign of life
        checkpoint=None,
        error=(
            f"replaced by batch run {newer.id[:12]}, which succeeded since; its process "
            f"(pid {record.pid} on {record.host}) stopped at {stopped:%Y-%m-%d %H:%M:%S} UTC "
            f"and its lease ran out {STALE_AFTER_SECONDS:.0f} s later"
        ),
    )


def committed_record(record: BatchRun, committed: Committed, fingerprint: str) -> dict[str, Any]:
    """The record of a run whose output committed: what it wrote, ended at its last beat
    (it was killed within one beat of its commit)."""
    return {
        "status": "succeeded",
        "input_fingerprint": fingerprint,
        "rows_read": committed.rows_written + committed.rows_rejected,
        "rows_written": committed.rows_written,
        "rows_rejected": committed.rows_rejected,
        "finished_at": record.heartbeat_at,
        "checkpoint": None,
        "error": None,
    }


def supersede_dead_runs(
    repo: BatchRecords, sink: Sink, record: BatchRun, clock: Callable[[], float]
) -> list[BatchRun]:
    """Running again after a kill replaces the killed run: a run killed after its output
    committed gets the record of a run that succeeded, any other is marked failed and its
    staging dropped. Staging that finished runs left behind is dropped too. The runs marked
    failed."""
    replaced = []
    for other in repo.recent(status="running", limit=1000):
        if other.id == record.id or other.output != record.output:
            continue
        if not other.is_stale(clock(), STALE_AFTER_SECONDS):
            continue
        committed = sink.committed(other.id)
        if committed is not None:
            repo.update_if_unchanged(
                other, **committed_record(other, committed, other.input_fingerprint)
            )
            continue
        superseded = repo.update_if_unchanged(
            other,
            status="failed",
            finished_at=clock(),
            error=f"interrupted; superseded by batch run {record.id[:12]}",
            checkpoint=None,
        )
        if superseded:
            sink.discard(other.id)
            replaced.append(other)
    for run_id in sink.staged_runs():
        try:
            finished = repo.get(run_id).status != "running"
        except (BatchRunNotFoundError, InvalidInputError):
            continue  # not a run of this store: not ours to drop
        if finished:
            sink.discard(run_id)
    return replaced

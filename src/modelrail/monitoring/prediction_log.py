"""The prediction log's bounded queue and its writer thread.

A request that is sampled costs its handler one append to a ``LogChannel`` (a deque owned
by the thread that fills it, so no lock is taken) of references it already holds: nothing is
copied or converted there. A writer thread collects every channel a few times a second,
turns what it found into Arrow tables (``prediction_rows``, a few array operations per
group of records, none per row) and writes rolling Parquet files through
``logfiles.write_table``: a file when a model has ``file_rows`` rows waiting or its oldest
waited ``file_seconds``, and everything on ``stop``.

The queue is bounded in rows: a record that would not fit is dropped and counted, never the
request waiting. A file that cannot be written (disk full, no permission) is logged and
counted; its rows are dropped and the writer goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from modelrail.monitoring.logfiles import PREDICTIONS, write_table
from modelrail.monitoring.prediction_rows import Origin, Record, records_table

__all__ = ["LogChannel", "LogCounts", "PredictionLog", "TallyCounts"]

log = logging.getLogger("modelrail.monitoring")

QUEUE_FULL = "queue_full"
WRITE_ERROR = "write_error"


class LogCounts(Protocol):
    """Where the log reports what it wrote and what it lost (``/metrics`` in a server)."""

    def written(self, model: str, requests: int) -> None: ...

    def dropped(self, model: str, reason: str, requests: int) -> None: ...

    def write_failed(self, model: str) -> None: ...


class TallyCounts:
    """Counts kept in this process (``dropped`` may come from several threads)."""

    def __init__(self) -> None:
        self.written_by: dict[str, int] = {}
        self.dropped_by: dict[tuple[str, str], int] = {}
        self.failures_by: dict[str, int] = {}
        self._lock = threading.Lock()

    def written(self, model: str, requests: int) -> None:
        with self._lock:
            self.written_by[model] = self.written_by.get(model, 0) + requests

    def dropped(self, model: str, reason: str, requests: int) -> None:
        with self._lock:
            key = (model, reason)
            self.dropped_by[key] = self.dropped_by.get(key, 0) + requests

    def write_failed(self, model: str) -> None:
        with self._lock:
            self.failures_by[model] = self.failures_by.get(model, 0) + 1


class LogChannel:
    """The records one thread hands to the writer. Only that thread appends and adds to
    ``offered``; only the writer takes and adds to ``taken``: each count has one writer."""

    __slots__ = ("_counts", "capacity", "items", "offered", "taken")

    def __init__(self, capacity_rows: int, counts: LogCounts) -> None:
        self.items: deque[Record] = deque()
        self.capacity = capacity_rows
        self.offered = 0
        self.taken = 0
        self._counts = counts

    def offer(self, record: Record) -> bool:
        """Queue ``record`` (see ``prediction_rows.Record``) unless the queue is full; then it
        is dropped and counted. Never blocks."""
        rows = record[7]
        if self.offered - self.taken + rows > self.capacity:
            self._counts.dropped(record[0].model, QUEUE_FULL, 1)
            return False
        self.offered += rows
        self.items.append(record)
        return True


@dataclass
class _Pending:
    """Tables of one model and one layout waiting to be written together."""

    model: str
    since: float
    tables: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    requests: int = 0


class PredictionLog:
    def __init__(
        self,
        root: str | Path,
        counts: LogCounts | None = None,
        *,
        queue_rows: int = 50_000,
        file_rows: int = 50_000,
        file_seconds: float = 10.0,
        collect_every_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.counts = counts if counts is not None else TallyCounts()
        self.queue_rows = queue_rows
        self.file_rows = file_rows
        self.file_seconds = file_seconds
        self.collect_every_s = collect_every_s
        self.clock = clock
        self._channels: list[LogChannel] = []
        self._pending: dict[tuple[str, pa.Schema], _Pending] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one collector at a time (the thread, or stop())

    def channel(self) -> LogChannel:
        """A queue for one producing thread (the event loop, the shadow scorer)."""
        made = LogChannel(self.queue_rows, self.counts)
        self._channels = [*self._channels, made]
        return made

    def start(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(
                target=self._run, name="modelrail-prediction-log", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write everything queued or waiting, then end the writer thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            if not self._thread.is_alive():
                return
            log.warning("modelrail: the prediction log's writer did not finish in %s s", timeout_s)
        self.flush()

    def flush(self) -> None:
        """Collect every channel and write every waiting table now."""
        with self._lock:
            self._collect()
            self._write(force=True)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.collect_every_s)
            stopping = self._stopping
            try:
                with self._lock:
                    self._collect()
                    self._write(force=stopping)
            except Exception:  # never let the writer die: the next round tries again
                log.exception("modelrail: the prediction log's writer failed")
            if stopping:
                return

    def _collect(self) -> None:
        grouped: dict[Origin, list[Record]] = {}
        for channel in self._channels:
            items, taken = channel.items, 0
            while items:
                record = items.popleft()
                taken += record[7]
                found = grouped.get(record[0])
                if found is None:
                    grouped[record[0]] = [record]
                else:
                    found.append(record)
            channel.taken += taken
        if not grouped:
            return
        offset = time.time() - time.perf_counter()
        now = self.clock()
        for origin, records in grouped.items():
            try:
                table = records_table(records, offset)
            except Exception:
                log.exception("modelrail: cannot log %s predictions of %s", origin.source, origin)
                self.counts.dropped(origin.model, WRITE_ERROR, len(records))
                continue
            self._add(origin.model, table, len(records), now)

    def add_table(self, model: str, table: pa.Table, requests: int) -> None:
        """Rows already in the log's layout (a batch run's sample), written with the rest."""
        with self._lock:
            self._add(model, table, requests, self.clock())
            self._write(force=False)

    def _add(self, model: str, table: pa.Table, requests: int, now: float) -> None:
        key = (model, table.schema)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending(model, now)
        pending.tables.append(table)
        pending.rows += table.num_rows
        pending.requests += requests

    def _write(self, *, force: bool) -> None:
        now = self.clock()
        for key, pending in list(self._pending.items()):
            due = pending.rows >= self.file_rows or now - pending.since >= self.file_seconds
            if not (force or due):
                continue
            del self._pending[key]
            try:
                write_table(self.root, PREDICTIONS, pending.model, pa.concat_tables(pending.tables))
            except Exception as exc:  # disk full, no permission: counted, never raised
                log.error(
                    "modelrail: could not write %s logged predictions of %s under %s: %s",
                    pending.rows,
                    pending.model,
                    self.root,
                    exc,
                )
                self.counts.write_failed(pending.model)
                self.counts.dropped(pending.model, WRITE_ERROR, pending.requests)
                continue
            self.counts.written(pending.model, pending.requests)

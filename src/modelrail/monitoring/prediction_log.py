"""The prediction log's writer thread.

Requests are handed over through ``LogChannel``s (one per producing thread, bounded, never
blocking: see ``log_channel``). The writer collects every channel a few times a second,
turns what it found into Arrow tables (``prediction_rows``: a few array operations per block
or group of records, none per row) and writes rolling Parquet files through
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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from pathlib import Path

import numpy as np
import pyarrow as pa

from modelrail.monitoring.log_channel import (
    WRITE_ERROR,
    LogChannel,
    LogCounts,
    RowBlock,
    TallyCounts,
)
from modelrail.monitoring.logfiles import PREDICTIONS, write_table
from modelrail.monitoring.prediction_rows import (
    Origin,
    Record,
    Requests,
    prediction_text,
    prediction_value,
    records_table,
    rows_table,
)

__all__ = ["LogChannel", "LogCounts", "PredictionLog", "TallyCounts"]

log = logging.getLogger("modelrail.monitoring")


@dataclass
class _Pending:
    """Tables of one model and one layout waiting to be written together."""

    model: str
    since: float
    tables: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    requests: int = 0


_ORIGIN = itemgetter(0)


def _by_origin(batch: list[Record]) -> list[tuple[Origin, list[Record]]]:
    """``batch`` split by origin, in order of first appearance (the usual batch has one: a
    server of one model between two swaps)."""
    first = batch[0][0]
    if all(origin is first for origin in map(_ORIGIN, batch)):
        return [(first, batch)]
    grouped: dict[Origin, list[Record]] = {}
    for record in batch:
        grouped.setdefault(record[0], []).append(record)
    return list(grouped.items())


def _warm_up() -> None:
    """Load what converting the first rows needs (Arrow's compute functions take a large
    part of a second to load), before requests come, not while they wait for the GIL."""
    for values in (np.array([1.5]), np.array([1]), np.array(["a"], dtype=object)):
        prediction_text(values)
        prediction_value(values, None, classifier=False)


_FIELDS = tuple(itemgetter(i) for i in range(4))  # of a block's (id, arrival, seconds, rows)


def _block_table(block: RowBlock, clock_offset: float) -> pa.Table:
    # Field by field (a C-level pass each) rather than zip(*requests): four times faster.
    ids, arrived, seconds, rows = (list(map(field, block.requests)) for field in _FIELDS)
    inputs, predictions, probabilities = block.arrays()
    return rows_table(
        block.origin,
        Requests(ids, arrived, seconds, rows),
        inputs,
        predictions,
        probabilities,
        clock_offset,
    )


class PredictionLog:
    def __init__(
        self,
        root: str | Path,
        counts: LogCounts | None = None,
        *,
        queue_rows: int = 50_000,
        file_rows: int = 50_000,
        file_seconds: float = 10.0,
        collect_every_s: float = 0.25,
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
            _warm_up()
            self._thread = threading.Thread(
                target=self._run, name="modelrail-prediction-log", daemon=True
            )
            self._thread.start()

    def seal(self) -> None:
        """Hand the writer every channel's rows copied so far. Call it from the thread that
        fills the channels (a server's event loop), or once they are no longer filled."""
        for channel in self._channels:
            channel.seal()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write everything queued or waiting, then end the writer thread. Call it once
        nothing adds to the channels any more (a server's shutdown)."""
        self.seal()
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
        blocks: list[RowBlock] = []
        records: list[Record] = []
        for channel in self._channels:
            items = channel.items
            taken = 0
            # Only what is there now: the producer may append meanwhile (deques allow it).
            for _ in range(len(items)):
                item = items.popleft()
                if isinstance(item, RowBlock):
                    blocks.append(item)
                    taken += item.size
                else:
                    records.append(item)
                    taken += item[7]
            channel.taken += taken
        if not blocks and not records:
            return
        offset = time.time() - time.perf_counter()
        now = self.clock()
        found: list[tuple[Origin, int, Callable[[], pa.Table]]] = [
            (b.origin, len(b.requests), partial(_block_table, b, offset)) for b in blocks
        ]
        if records:
            found += [
                (origin, len(group), partial(records_table, group, offset))
                for origin, group in _by_origin(records)
            ]
        for origin, requests, convert in found:
            try:
                table = convert()
            except Exception:
                log.exception("modelrail: cannot log predictions of %s", origin.model)
                self.counts.dropped(origin.model, WRITE_ERROR, requests)
                continue
            self._add(origin.model, table, requests, now)

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

"""How a thread that answers requests hands sampled predictions to the log's writer, within a
bound, without a lock and without blocking.

The usual request (a float64 input matrix, one-dimensional predictions) is copied into a
``RowBlock``: preallocated arrays the size of a few thousand rows, one per model version,
plus one small tuple per request (its id, arrival, model seconds, rows). Copying a row while
it is in the cache costs about as much as keeping references to it, and leaves nothing per
request for the writer to gather: it gets whole blocks, converted with one array operation
per column. A block goes to the writer when it is full or when the producing thread seals it
(the server does a few times a second, on its event loop). Anything else (text inputs,
several outputs, an unusually large request, a shadow's answers) is queued as a ``Record``
of references, which the writer gathers itself.

Each channel has one producing thread: only it appends, seals and adds to ``offered``; only
the writer takes and adds to ``taken``. Deques allow one thread to append while another
pops, so no lock is needed, and each count has a single writer.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Protocol

import numpy as np

from modelrail.monitoring.prediction_rows import Origin, Record

__all__ = ["QUEUE_FULL", "WRITE_ERROR", "LogChannel", "LogCounts", "RowBlock", "TallyCounts"]

QUEUE_FULL = "queue_full"
WRITE_ERROR = "write_error"
BLOCK_ROWS = 4096
_OBJECT = np.dtype(object)


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


class RowBlock:
    """Rows of one origin copied side by side, with one (id, arrival, seconds, rows) tuple
    per request in ``requests``."""

    __slots__ = ("inputs", "origin", "predictions", "probabilities", "requests", "size")

    def __init__(
        self,
        origin: Origin,
        matrix: np.ndarray[Any, Any],
        predictions: np.ndarray[Any, Any],
        probabilities: np.ndarray[Any, Any] | None,
    ) -> None:
        self.origin = origin
        self.inputs = np.empty((BLOCK_ROWS, matrix.shape[1]), dtype=np.float64)
        kind = predictions.dtype
        self.predictions = np.empty(BLOCK_ROWS, dtype=kind if kind.kind in "biuf" else _OBJECT)
        self.probabilities = (
            None
            if probabilities is None
            else np.empty((BLOCK_ROWS, probabilities.shape[1]), dtype=np.float64)
        )
        self.requests: list[tuple[bytes, float, float, int]] = []
        self.size = 0

    def fits(self, predictions: np.ndarray[Any, Any], probabilities: Any) -> bool:
        """Whether a request's answers have this block's layout (checked once per request)."""
        kind = predictions.dtype
        mine = self.predictions.dtype
        if kind is not mine and kind != mine and not (mine is _OBJECT and kind.kind in "UO"):
            return False
        if predictions.ndim != 1:
            return False
        if probabilities is None:
            return self.probabilities is None
        return self.probabilities is not None and (
            probabilities.shape[1:] == self.probabilities.shape[1:]
        )


class LogChannel:
    """The predictions one thread hands to the writer (see the module's docstring)."""

    __slots__ = ("_blocks", "_counts", "capacity", "items", "offered", "taken")

    def __init__(self, capacity_rows: int, counts: LogCounts) -> None:
        self.items: deque[Record | RowBlock] = deque()
        self.capacity = capacity_rows
        self.offered = 0
        self.taken = 0
        self._counts = counts
        self._blocks: dict[Origin, RowBlock] = {}

    def add(
        self,
        origin: Origin,
        request_id: bytes,
        arrived: float,
        inputs: Any,
        predictions: np.ndarray[Any, Any],
        probabilities: np.ndarray[Any, Any] | None,
        seconds: float,
        rows: int,
    ) -> bool:
        """Queue one scored request unless the queue is full; then it is dropped and counted.
        Never blocks, never raises."""
        if self.offered - self.taken + rows > self.capacity:
            self._counts.dropped(origin.model, QUEUE_FULL, 1)
            return False
        self.offered += rows
        try:
            if inputs.__class__ is not np.ndarray or rows > BLOCK_ROWS:
                raise _Unusual
            block = self._blocks.get(origin)
            if block is None or not block.fits(predictions, probabilities):
                if block is not None:
                    self.seal(origin)
                block = self._blocks[origin] = RowBlock(origin, inputs, predictions, probabilities)
            start = block.size
            end = start + rows
            if end > BLOCK_ROWS:
                self.seal(origin)
                block = self._blocks[origin] = RowBlock(origin, inputs, predictions, probabilities)
                start, end = 0, rows
            block.inputs[start:end] = inputs
            block.predictions[start:end] = predictions
            if probabilities is not None:
                block.probabilities[start:end] = probabilities  # type: ignore[index]
            block.requests.append((request_id, arrived, seconds, rows))
            block.size = end
        except _Unusual:
            self.items.append(
                (origin, request_id, arrived, inputs, predictions, probabilities, seconds, rows)
            )
        except Exception:  # an answer of an unforeseen shape: counted, never raised
            self.offered -= rows
            self._counts.dropped(origin.model, WRITE_ERROR, 1)
            return False
        return True

    def offer(self, record: Record) -> bool:
        """Queue ``record`` as it is (see ``prediction_rows.Record``) unless the queue is
        full; then it is dropped and counted. Never blocks."""
        rows = record[7]
        if self.offered - self.taken + rows > self.capacity:
            self._counts.dropped(record[0].model, QUEUE_FULL, 1)
            return False
        self.offered += rows
        self.items.append(record)
        return True

    def seal(self, origin: Origin | None = None) -> None:
        """Hand the writer the rows copied so far (of ``origin``, or of every origin). Only
        the producing thread may call this, or anyone once it has stopped."""
        chosen = list(self._blocks) if origin is None else [origin]
        for key in chosen:
            block = self._blocks.pop(key, None)
            if block is not None and block.size:
                self.items.append(block)


class _Unusual(Exception):
    """A request the blocks do not take: queued as a record of references instead."""

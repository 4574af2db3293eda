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

    __slots__ = (
        "inputs",
        "kind",
        "origin",
        "predictions",
        "probabilities",
        "requests",
        "size",
        "without_probabilities",
    )

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
        self.without_probabilities = probabilities is None
        # The dtype of the answers last found to fit (the same object, request after request,
        # for a given model: one identity test tells the usual request fits).
        self.kind = kind
        self.requests: list[tuple[bytes, float, float, int]] = []
        self.size = 0

    def fits(self, predictions: np.ndarray[Any, Any], probabilities: Any) -> bool:
        """Whether a request's answers have this block's layout."""
        kind = predictions.dtype
        mine = self.predictions.dtype
        if kind != mine and not (mine == _OBJECT and kind.kind in "UO"):
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
        block = self._blocks.get(origin)
        try:
            if (
                block is None
                or predictions.dtype is not block.kind
                or (probabilities is None) is not block.without_probabilities
                or block.size + rows > BLOCK_ROWS
            ):
                block = self._block_for(origin, block, inputs, predictions, probabilities, rows)
            start = block.size
            if rows == 1:  # (a row's item assignment costs half a slice's)
                block.inputs[start] = inputs[0]
                block.predictions[start] = predictions[0]
                if probabilities is not None:
                    block.probabilities[start] = probabilities[0]  # type: ignore[index]
            else:
                end = start + rows
                block.inputs[start:end] = inputs
                block.predictions[start:end] = predictions
                if probabilities is not None:
                    block.probabilities[start:end] = probabilities  # type: ignore[index]
            block.requests.append((request_id, arrived, seconds, rows))
            block.size = start + rows
        except _Unusual:
            self.items.append(
                (origin, request_id, arrived, inputs, predictions, probabilities, seconds, rows)
            )
        except Exception:  # an answer of an unforeseen shape: counted, never raised
            self.offered -= rows
            self._counts.dropped(origin.model, WRITE_ERROR, 1)
            return False
        return True

    def _block_for(
        self,
        origin: Origin,
        block: RowBlock | None,
        inputs: Any,
        predictions: np.ndarray[Any, Any],
        probabilities: np.ndarray[Any, Any] | None,
        rows: int,
    ) -> RowBlock:
        """The block for a request the usual test did not settle: the current one if the
        request fits in it, else a new one (the current one goes to the writer)."""
        if inputs.__class__ is not np.ndarray or inputs.ndim != 2 or predictions.ndim != 1:
            raise _Unusual  # text inputs, several outputs
        if rows > BLOCK_ROWS:
            raise _Unusual
        if block is not None:
            if block.size + rows <= BLOCK_ROWS and block.fits(predictions, probabilities):
                block.kind = predictions.dtype
                return block
            self.seal(origin)
        made = self._blocks[origin] = RowBlock(origin, inputs, predictions, probabilities)
        if not made.fits(predictions, probabilities):  # several outputs, say
            del self._blocks[origin]
            raise _Unusual
        return made

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

"""How a thread that answers requests hands sampled predictions to the log's writer, within a
bound, without a lock and without blocking.

The usual request (a float64 input matrix, one answer per row) is appended to a ``RowBlock``
of its model version as raw bytes (its input rows, its answers, its probabilities), plus one
small tuple (its id, arrival, model seconds, rows). Appending a row while it is in the cache
costs about as much as keeping references to it, and leaves nothing per request for the
writer to gather: it gets whole blocks, read back as numpy arrays without a copy and
converted with one array operation per column. A block goes to the writer when it holds
``BLOCK_ROWS`` rows or when the producing thread seals it (the server does a few times a
second, on its event loop). Anything else (text inputs, several outputs, an unusually large
request, a shadow's answers) is queued as a ``Record`` of references, which the writer
gathers itself.

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
_FLOAT = np.dtype(np.float64)


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
    """Rows of one origin appended side by side as raw bytes (float64 inputs, the answers'
    numbers, float64 probabilities; text answers as a list), with one (id, arrival, seconds,
    rows) tuple per request in ``requests``. ``arrays`` gives them back as numpy arrays."""

    __slots__ = (
        "classes",
        "inputs",
        "kind",
        "origin",
        "predictions",
        "probabilities",
        "requests",
        "size",
        "width",
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
        self.width = int(matrix.shape[1])
        # The dtype of the answers (the same object, request after request, for a given
        # model: one identity test tells the usual request fits).
        self.kind = predictions.dtype
        self.inputs = bytearray()
        self.predictions: bytearray | list[Any] = bytearray() if self.kind.kind in "biuf" else []
        self.without_probabilities = probabilities is None
        self.probabilities = None if probabilities is None else bytearray()
        self.classes = 0 if probabilities is None else int(probabilities.shape[1])
        self.requests: list[tuple[bytes, float, float, int]] = []
        self.size = 0

    @staticmethod
    def takes(
        inputs: np.ndarray[Any, Any],
        predictions: np.ndarray[Any, Any],
        probabilities: np.ndarray[Any, Any] | None,
    ) -> bool:
        """Whether a request's arrays can be appended as bytes (C order, float64 inputs and
        probabilities, one answer per row)."""
        if inputs.ndim != 2 or inputs.dtype != _FLOAT or not inputs.flags.c_contiguous:
            return False
        if predictions.ndim != 1 or not predictions.flags.c_contiguous:
            return False
        if probabilities is None:
            return True
        return (
            probabilities.ndim == 2
            and probabilities.dtype == _FLOAT
            and bool(probabilities.flags.c_contiguous)
        )

    def fits(self, inputs: Any, predictions: Any, probabilities: Any) -> bool:
        """Whether a request that ``takes`` has this block's layout."""
        if inputs.shape[1] != self.width or (probabilities is None) != self.without_probabilities:
            return False
        if probabilities is not None and probabilities.shape[1] != self.classes:
            return False
        if isinstance(self.predictions, list):
            return predictions.dtype.kind in "UO"
        return bool(predictions.dtype == self.kind)

    def append(self, inputs: Any, predictions: Any, probabilities: Any) -> None:
        """Append a request's rows as raw bytes (a third of what numpy's item assignment
        costs). A layout that changed without ``LogChannel.add``'s test seeing it (an array
        in Fortran order, say) raises, leaving the block as it was (the request is then
        queued as a record): never written wrong."""
        try:
            # (extend, not +=: numpy's own + would take a bytearray += array over)
            self.inputs.extend(inputs)
            if self.predictions.__class__ is list:
                self.predictions.extend(predictions.tolist())
            else:
                self.predictions.extend(predictions)
            if probabilities is not None:
                self.probabilities.extend(probabilities)  # type: ignore[union-attr]
            elif self.probabilities is not None:
                raise ValueError("this request has no probabilities")
        except BaseException:  # back to the rows before this request
            size = self.size
            del self.inputs[size * self.width * 8 :]
            if self.predictions.__class__ is list:
                del self.predictions[size:]
            else:
                del self.predictions[size * self.kind.itemsize :]
            if self.probabilities is not None:
                del self.probabilities[size * self.classes * 8 :]
            raise

    def arrays(self) -> tuple[np.ndarray[Any, Any], Any, np.ndarray[Any, Any] | None]:
        """The rows' inputs, predictions and probabilities (views of the bytes: read them
        once the producer is done with the block)."""
        inputs = np.frombuffer(self.inputs, dtype=_FLOAT).reshape(-1, self.width)
        if isinstance(self.predictions, list):
            predictions = np.array(self.predictions, dtype=_OBJECT)
        else:
            predictions = np.frombuffer(self.predictions, dtype=self.kind)
        probabilities = None
        if self.probabilities is not None:
            probabilities = np.frombuffer(self.probabilities, dtype=_FLOAT)
            probabilities = probabilities.reshape(-1, self.classes)
        return inputs, predictions, probabilities


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
                or inputs.__class__ is not np.ndarray
                or inputs.dtype is not _FLOAT
                or block.size + rows > BLOCK_ROWS
            ):
                block = self._block_for(origin, block, inputs, predictions, probabilities, rows)
            block.append(inputs, predictions, probabilities)
            block.requests.append((request_id, arrived, seconds, rows))
            block.size += rows
        except Exception:  # text inputs, several outputs, a layout of its own: as it is
            self.items.append(
                (origin, request_id, arrived, inputs, predictions, probabilities, seconds, rows)
            )
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
        if inputs.__class__ is not np.ndarray or rows > BLOCK_ROWS:
            raise _Unusual  # text inputs, or a very large request
        if not RowBlock.takes(inputs, predictions, probabilities):
            raise _Unusual  # several outputs, say
        if block is not None:
            if block.size + rows <= BLOCK_ROWS and block.fits(inputs, predictions, probabilities):
                block.kind = predictions.dtype
                return block
            self.seal(origin)
        made = self._blocks[origin] = RowBlock(origin, inputs, predictions, probabilities)
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

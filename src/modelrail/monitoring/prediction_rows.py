"""Scored requests as rows of the prediction log (the layout is ``logfiles.PREDICTION_FIELDS``
followed by one ``input.<feature>`` column per logged feature).

The request path hands over what it already has (the input matrix or columns, the scores,
the request id, when it arrived) and this module turns many such records at once into Arrow
columns with a handful of numpy and Arrow calls per group of records, never per row: the
work happens on the log's writer thread, off the request path.

Predictions are kept as text the way labels are (``logfiles.feedback_table``): a number's
text as Arrow writes it (``1.0`` is ``"1"``), booleans as ``true`` / ``false``, so the two
compare as they are. ``prediction_value`` is the number behind a prediction where there is
one: the value of a regression, the positive class's probability of a binary classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import is_not
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.monitoring.logfiles import INPUT_PREFIX, PREDICTION_FIELDS, TIME_TYPE
from modelrail.monitoring.profiling import label_text
from modelrail.scoring.columns import Columns

__all__ = ["Origin", "Record", "Requests", "prediction_text", "records_table", "rows_table"]

NUMERIC_DTYPES = frozenset({"float64", "int64", "bool"})
# What one scored request leaves for the log: its origin, its id (bytes or text), when it
# arrived (``time.perf_counter()``), the model's input (a float64 matrix or ``Columns``), the
# predictions, the class probabilities (or None), the model's time in seconds, its row count.
Record = tuple[
    "Origin", bytes | str, float, Any, np.ndarray[Any, Any], np.ndarray[Any, Any] | None, float, int
]


@dataclass(frozen=True, slots=True, eq=False)
class Origin:
    """What every logged row of one served version repeats, worked out once."""

    model: str
    version: int
    environment: str | None
    source: str  # "serve", "shadow" or "batch"
    rate: float  # the share of requests logged
    positions: tuple[int, ...]  # the logged features' places among the model's inputs
    names: tuple[str, ...]  # their names
    numeric: tuple[bool, ...]  # whether each is logged as a number
    classifier: bool

    @classmethod
    def of(
        cls,
        version: Any,
        *,
        environment: str | None,
        source: str,
        rate: float,
        exclude: Sequence[str] = (),
    ) -> Origin:
        """The origin of rows scored by ``version`` (a ``ModelVersion``), without the
        features ``exclude`` names (never logged)."""
        signature = version.signature
        excluded = set(exclude)
        kept = [(j, c) for j, c in enumerate(signature.inputs) if c.name not in excluded]
        return cls(
            model=version.model,
            version=version.version,
            environment=environment,
            source=source,
            rate=rate,
            positions=tuple(j for j, _ in kept),
            names=tuple(c.name for _, c in kept),
            numeric=tuple(c.dtype in NUMERIC_DTYPES for _, c in kept),
            classifier=bool(signature.classes) or signature.has_probabilities,
        )

    def schema(self) -> pa.Schema:
        inputs = [
            pa.field(INPUT_PREFIX + name, pa.float64() if number else pa.string())
            for name, number in zip(self.names, self.numeric, strict=True)
        ]
        return pa.schema([*PREDICTION_FIELDS, *inputs])


def records_table(records: Sequence[Record], clock_offset: float) -> pa.Table:
    """Records of one origin as one table. ``clock_offset``: ``time.time()`` minus
    ``time.perf_counter()``, to turn arrival times into wall-clock times."""
    # One C-level pass turns the records into a tuple per field.
    origins, ids, arrived, inputs, predictions, probabilities, seconds, counts = zip(
        *records, strict=True
    )
    joined = None
    if all(map(is_not, probabilities, repeat(None))):  # (``in`` would compare arrays)
        joined = _joined(probabilities)
    matrices = inputs[0].__class__ is np.ndarray
    return rows_table(
        origins[0],
        Requests(ids, arrived, seconds, counts),
        _joined(inputs) if matrices else inputs,
        _joined(predictions),
        joined,
        clock_offset,
    )


@dataclass(frozen=True, slots=True)
class Requests:
    """Per request, in order: its id, arrival (``perf_counter``), model seconds, rows."""

    ids: Sequence[bytes | str]
    arrived: Sequence[float]
    seconds: Sequence[float]
    rows: Sequence[int]


def rows_table(
    origin: Origin,
    requests: Requests,
    inputs: Any,
    predictions: np.ndarray[Any, Any],
    probabilities: np.ndarray[Any, Any] | None,
    clock_offset: float,
) -> pa.Table:
    """The log's rows of ``requests``: ``inputs`` is their input matrices one above the other
    or their ``Columns`` (one per request); predictions and probabilities, every row's."""
    counts = np.array(requests.rows, dtype=np.int64)
    total = int(counts.sum())
    first = requests.ids[0]
    ids = pa.array(requests.ids, pa.binary() if isinstance(first, bytes) else pa.string())
    if ids.type == pa.binary():
        ids = ids.cast(pa.string())
    arrived = np.array(requests.arrived, dtype=np.float64)
    micros = ((arrived + clock_offset) * 1e6).astype(np.int64)
    latency = np.array(requests.seconds, dtype=np.float64) * 1e3
    if total == len(counts):  # one row each: the usual request
        rows = np.zeros(total, dtype=np.int32)
    else:
        starts = np.cumsum(counts) - counts
        rows = (np.arange(total) - np.repeat(starts, counts)).astype(np.int32)
        ids = ids.take(pa.array(np.repeat(np.arange(len(counts)), counts)))
        micros, latency = np.repeat(micros, counts), np.repeat(latency, counts)
    columns = [
        ids,
        pa.array(rows, pa.int32()),
        pa.array(micros, pa.int64()).cast(TIME_TYPE),
        pa.repeat(pa.scalar(origin.model, pa.string()), total),
        pa.repeat(pa.scalar(origin.version, pa.int64()), total),
        pa.repeat(pa.scalar(origin.environment, pa.string()), total),
        pa.repeat(pa.scalar(origin.source, pa.string()), total),
        pa.repeat(pa.scalar(origin.rate, pa.float64()), total),
        pa.array(latency, pa.float64()),
        prediction_text(predictions),
        prediction_value(predictions, probabilities, origin.classifier),
        *_inputs(origin, inputs),
    ]
    return pa.Table.from_arrays(columns, schema=origin.schema())


def _joined(arrays: Sequence[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def prediction_text(predictions: Any) -> pa.Array:
    """Predictions as text, the way labels are written (see the module's docstring); a row
    of several outputs as its JSON list."""
    if isinstance(predictions, np.ndarray) and predictions.ndim > 1:
        rows = [orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) for row in predictions]
        return pa.array([r.decode() for r in rows], pa.string())
    values = predictions if isinstance(predictions, pa.Array) else _arrow(predictions)
    if pa.types.is_boolean(values.type):
        return pc.if_else(values, "true", "false")
    if pa.types.is_floating(values.type):
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
    return values.cast(pa.string())


def prediction_value(
    predictions: Any, probabilities: np.ndarray[Any, Any] | None, classifier: bool
) -> pa.Array:
    """The number behind each prediction: a binary classifier's positive-class probability,
    a regression's value; null where there is none (a class of several, a text)."""
    rows = len(predictions)
    if probabilities is not None and probabilities.ndim == 2 and probabilities.shape[1] == 2:
        return pa.array(np.ascontiguousarray(probabilities[:, 1]), pa.float64(), from_pandas=True)
    if classifier or not isinstance(predictions, np.ndarray) or predictions.ndim != 1:
        return pa.nulls(rows, pa.float64())
    if predictions.dtype.kind not in "iuf":
        return pa.nulls(rows, pa.float64())
    return pa.array(predictions.astype(np.float64, copy=False), pa.float64(), from_pandas=True)


def _arrow(values: np.ndarray[Any, Any]) -> pa.Array:
    if values.dtype.kind in "biuf":
        return pa.array(values, from_pandas=True)
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed labels: each as Python prints it
        return pa.array([None if v is None else str(v) for v in values.tolist()], pa.string())


def _inputs(origin: Origin, inputs: Any) -> list[pa.Array]:
    """The logged features, one Arrow array each, from a matrix of every row or from each
    request's ``Columns``."""
    if not origin.positions:
        return []
    if isinstance(inputs, np.ndarray):
        # NaN (a missing value) is written as null; looking for it value by value costs
        # more than the conversion itself, so only a block that holds one is.
        gaps = bool(np.isnan(inputs).any())
        by_column = np.ascontiguousarray(inputs.T)  # one pass, not one per column
        return [pa.array(by_column[j], pa.float64(), from_pandas=gaps) for j in origin.positions]
    columns: Sequence[Columns] = inputs
    found = []
    for j, number in zip(origin.positions, origin.numeric, strict=True):
        values = _joined([c.arrays[j] for c in columns])
        found.append(_number_column(values) if number else _text_column(values))
    return found


def _number_column(values: np.ndarray[Any, Any]) -> pa.Array:
    if values.dtype.kind in "biuf":
        return pa.array(values.astype(np.float64, copy=False), pa.float64(), from_pandas=True)
    # Booleans with a missing value come as objects (True, False, None).
    return pa.array(values, pa.bool_(), from_pandas=True).cast(pa.float64())


def _text_column(values: np.ndarray[Any, Any]) -> pa.Array:
    if values.dtype.kind == "M":  # as profiles write them, or every logged time drifts
        return label_text(values).cast(pa.string())
    try:
        return pa.array(values, pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values.tolist()], pa.string())

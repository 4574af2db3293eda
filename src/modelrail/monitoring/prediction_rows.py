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
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.monitoring.logfiles import INPUT_PREFIX, PREDICTION_FIELDS, TIME_TYPE
from modelrail.scoring.columns import Columns

__all__ = ["Origin", "Record", "prediction_text", "records_table"]

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
    origin = records[0][0]
    counts = np.fromiter((r[7] for r in records), dtype=np.int64, count=len(records))
    total = int(counts.sum())
    single = total == len(records)
    ids = pa.array([r[1] for r in records])
    if ids.type == pa.binary():
        ids = ids.cast(pa.string())
    arrived = np.fromiter((r[2] for r in records), dtype=np.float64, count=len(records))
    micros = ((arrived + clock_offset) * 1e6).astype(np.int64)
    latency = np.fromiter((r[6] for r in records), dtype=np.float64, count=len(records)) * 1e3
    if single:
        rows = np.zeros(total, dtype=np.int32)
    else:
        starts = np.cumsum(counts) - counts
        rows = (np.arange(total) - np.repeat(starts, counts)).astype(np.int32)
        ids = ids.take(pa.array(np.repeat(np.arange(len(records)), counts)))
        micros, latency = np.repeat(micros, counts), np.repeat(latency, counts)
    predictions = _joined([r[4] for r in records])
    found = [r[5] for r in records if r[5] is not None]
    probabilities = _joined(found) if len(found) == len(records) else None
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
        *_inputs(origin, [r[3] for r in records]),
    ]
    return pa.Table.from_arrays(columns, schema=origin.schema())


def _joined(arrays: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
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


def _inputs(origin: Origin, inputs: list[Any]) -> list[pa.Array]:
    """The logged features of every record, one Arrow array each."""
    if not origin.positions:
        return []
    first = inputs[0]
    if isinstance(first, np.ndarray):
        matrix = _joined(inputs) if first.ndim == 2 else np.vstack(inputs)
        return [
            pa.array(np.ascontiguousarray(matrix[:, j]), pa.float64(), from_pandas=True)
            for j in origin.positions
        ]
    columns: list[Columns] = inputs
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
    if values.dtype.kind == "M":
        return pa.array(values).cast(pa.string())
    try:
        return pa.array(values, pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values.tolist()], pa.string())

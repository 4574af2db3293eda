"""Score Arrow record batches with one verified model version.

The output of a batch keeps only what varies per row (the id columns, the prediction and
the class probabilities); the run's constants (model, version, run id, time scored) travel
beside it in a ``RunStamp`` so each sink can add them in the way that is cheapest for it.
Rows that cannot be scored (a null or non-finite feature, a null id, a score that came out
NaN or infinite) are either an error that names the first of them, or set aside with their
reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.batch import arrays
from modelrail.batch.refusals import find_refused, is_refusal, refusal_reason
from modelrail.batch.spec import OnBadRows
from modelrail.errors import BatchInputError
from modelrail.scoring.predictor import UNSCORABLE, Scored, ScoringModel

PREDICTION = "prediction"
STAMP_FIELDS = (
    pa.field("model", pa.string(), nullable=False),
    pa.field("model_version", pa.int32(), nullable=False),
    pa.field("batch_run_id", pa.string(), nullable=False),
    pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
)
REJECT_SCHEMA = pa.schema(
    [
        pa.field("batch_run_id", pa.string(), nullable=False),
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("row_id", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
# Times a batch's refused rows are set aside before it is given up on (each round finds the
# rows one of the model's checks refuses).
_REFUSAL_ROUNDS = 8
_ARROW_TYPES = {"float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}


@dataclass(frozen=True)
class RunStamp:
    """The values every output row of a run carries besides its own."""

    model: str
    version: int
    run_id: str
    # The constant columns by row count: every batch but the last has the same length.
    _made: dict[int, tuple[pa.Array, ...]] = field(default_factory=dict, compare=False, repr=False)

    def columns(self, rows: int, scored_at: float) -> list[pa.Array]:
        constant = self._made.get(rows)
        if constant is None:
            constant = (
                arrays.repeated_string(self.model, rows),
                arrays.repeated(self.version, STAMP_FIELDS[1].type, rows),
                arrays.repeated_string(self.run_id, rows),
            )
            self._made.clear()
            self._made[rows] = constant
        micros = int(scored_at * 1_000_000)
        return [*constant, arrays.repeated(micros, STAMP_FIELDS[3].type, rows)]

    def dictionary_columns(self, rows: int, scored_at: float) -> list[pa.Array]:
        """The same columns dictionary-encoded: each a single value and ``rows`` zero
        indices, which a Parquet writer stores as they are instead of hashing every row."""
        zeros = arrays.repeated(0, pa.int32(), rows)
        return [
            pa.DictionaryArray.from_arrays(zeros, single) for single in self.columns(1, scored_at)
        ]


@dataclass(frozen=True)
class ScoredBatch:
    output: pa.RecordBatch
    rejects: pa.RecordBatch | None
    rows_read: int
    # Rows a Spark executor has already written to the run's staging (Parquet output).
    written_elsewhere: int = 0
    rejected_elsewhere: int = 0

    @property
    def rows_written(self) -> int:
        return int(self.output.num_rows) + self.written_elsewhere

    @property
    def rows_rejected(self) -> int:
        rejects = 0 if self.rejects is None else self.rejects.num_rows
        return rejects + self.rejected_elsewhere


class BatchScorer:
    """Turns an input batch (id columns + the model's input columns) into output rows."""

    def __init__(
        self,
        model: ScoringModel,
        id_fields: tuple[pa.Field, ...],
        *,
        on_bad_rows: OnBadRows = "fail",
    ) -> None:
        self.model = model
        self.id_fields = id_fields
        self.id_columns = tuple(f.name for f in id_fields)
        self.on_bad_rows = on_bad_rows
        self._matrix: np.ndarray[Any, Any] | None = None
        # Columns the model scores missing (checked when the version was registered).
        self._nullable = tuple(c.nullable for c in model.version.signature.inputs)
        clash = set(self.id_columns) & {
            *self.prediction_columns(),
            *self.probability_columns(),
            *(f.name for f in STAMP_FIELDS),
        }
        if clash:
            raise BatchInputError(
                f"id column {sorted(clash)[0]!r} has the name of an output column; "
                "rename it in the input"
            )
        self.output_schema = pa.schema(
            [
                *id_fields,
                *(pa.field(name, arrow) for name, arrow in self._prediction_fields()),
                *(pa.field(c, pa.float64()) for c in self.probability_columns()),
            ]
        )

    # -- layout ----------------------------------------------------------------------

    def probability_columns(self) -> tuple[str, ...]:
        signature = self.model.version.signature
        if not signature.has_probabilities:
            return ()
        classes = signature.classes
        if len(classes) == 2:
            return ("probability",)
        return tuple(f"probability_{_column_suffix(c)}" for c in classes)

    def prediction_columns(self) -> tuple[str, ...]:
        """``prediction``, or one column per output of a multi-output model."""
        return tuple(name for name, _ in self._prediction_fields())

    def _prediction_fields(self) -> list[tuple[str, pa.DataType]]:
        outputs = self.model.version.signature.outputs
        if len(outputs) <= 1:
            dtype = outputs[0].dtype if outputs else "float64"
            return [(PREDICTION, _ARROW_TYPES.get(dtype, pa.string()))]
        return [(o.name, _ARROW_TYPES.get(o.dtype, pa.string())) for o in outputs]

    # -- scoring ---------------------------------------------------------------------

    def score(self, batch: pa.RecordBatch, first_row: int, run_id: str) -> ScoredBatch:
        rows = batch.num_rows
        clean = self._score_clean(batch)
        if clean is not None:
            return ScoredBatch(output=self._output(batch, clean), rejects=None, rows_read=rows)
        features = self._features(batch)
        bad = self._bad_rows(batch, features)
        kept = batch
        if bad is not None:
            if self.on_bad_rows == "fail":
                self._raise_first(batch, bad, first_row)
            kept = batch.filter(arrays.from_numpy(~bad[0], pa.bool_()))
            features = features[~bad[0]] if isinstance(features, np.ndarray) else kept
        scored, features, kept, bad = self._score_kept(features, kept, bad, batch, first_row)
        unscorable = scored.nonfinite_rows()
        if unscorable is not None:
            # A score that overflowed is no prediction: the row is bad like one with a
            # missing feature (named, or set aside with its reason).
            bad = _with_scored_bad(bad, unscorable, rows)
            if self.on_bad_rows == "fail":
                self._raise_first(batch, bad, first_row)
            kept = kept.filter(arrays.from_numpy(~unscorable, pa.bool_()))
            scored = scored.without(unscorable)
        rejects = None if bad is None else self._rejects(batch, bad, first_row, run_id)
        return ScoredBatch(output=self._output(kept, scored), rejects=rejects, rows_read=rows)

    def _score_clean(self, batch: pa.RecordBatch) -> Scored | None:
        """The common case, cheaply: a compiled model scores the batch's own column buffers,
        and finite scores vouch for finite features (see ``LinearForm.predict_columns``).
        None sends the batch down the general path, which finds and names its bad rows."""
        if self.model.compiled is None or batch.num_rows == 0:
            return None
        if any(_empty_ids(batch.column(name)) is not None for name in self.id_columns):
            return None
        return self.model.score_columns([self._float_column(batch, n) for n in self.model.columns])

    def _output(self, batch: pa.RecordBatch, scored: Scored) -> pa.RecordBatch:
        columns = [batch.column(name) for name in self.id_columns]
        predictions = scored.predictions
        names = self.prediction_columns()
        if len(names) > 1:  # one column per output (a 2-D answer)
            predictions = predictions.reshape(len(predictions), -1)
        for j, name in enumerate(names):
            values = predictions if len(names) == 1 else np.ascontiguousarray(predictions[:, j])
            columns.append(_prediction_array(values, self.output_schema.field(name).type))
        columns.extend(self._probabilities(scored))
        return pa.RecordBatch.from_arrays(columns, schema=self.output_schema)

    def validate(self, batch: pa.RecordBatch, first_row: int) -> None:
        """Raise on the batch's first bad row, as ``score`` would, without writing: it is
        scored too, since a row can be bad by its score alone (one that overflowed)."""
        if self.on_bad_rows == "fail":
            self.score(batch, first_row, "")

    def _raise_first(
        self,
        batch: pa.RecordBatch,
        bad: tuple[np.ndarray[Any, Any], list[str]],
        first_row: int,
    ) -> None:
        index = int(np.flatnonzero(bad[0])[0])
        raise BatchInputError(
            f"input row {first_row + index} ({self._row_id(batch, index)}): "
            f"{bad[1][index]}; nothing was written ({{on_bad_rows}} 'skip' sets such "
            "rows aside with their reason instead)",
            params=("on_bad_rows",),
        )

    def _features(self, batch: pa.RecordBatch) -> Any:
        if not self.model.numeric:
            return batch
        # Filled one contiguous column at a time, then seen as (rows, columns): writing
        # columns into a row-major matrix would stride through memory. The matrix is reused
        # from batch to batch (scoring copies out of it): a fresh one of tens of MB would be
        # page-faulted in anew every time.
        shape = (len(self.model.columns), batch.num_rows)
        if self._matrix is None or self._matrix.shape != shape:
            self._matrix = np.empty(shape, dtype=np.float64)
        by_column = self._matrix
        for j, name in enumerate(self.model.columns):
            by_column[j] = self._float_column(batch, name)
        return by_column.T

    @staticmethod
    def _float_column(batch: pa.RecordBatch, name: str) -> np.ndarray[Any, Any]:
        """A column's values as float64 (nulls as NaN): a view of its buffer if it is one."""
        column = batch.column(name)
        if column.type != pa.float64():
            column = pc.cast(column, pa.float64())
        return arrays.to_numpy(column, nulls_as_nan=True)

    def _bad_rows(
        self, batch: pa.RecordBatch, features: Any
    ) -> tuple[np.ndarray[Any, Any], list[str]] | None:
        reasons: list[str] = [""] * batch.num_rows
        bad = np.zeros(batch.num_rows, dtype=bool)
        checks: list[tuple[str, np.ndarray[Any, Any]]] = []
        for name in self.id_columns:
            empty = _empty_ids(batch.column(name))
            if empty is not None:
                checks.append((f"id column {name!r} is empty", empty))
        if isinstance(features, np.ndarray):
            finite = np.isfinite(features)
            if not finite.all():
                for j in np.flatnonzero(~finite.all(axis=0)):
                    name = self.model.columns[j]
                    # NaN is a missing value: fine where the model scores one; inf never is.
                    refused = ~finite[:, j]
                    if self._nullable[j]:
                        refused &= ~np.isnan(features[:, j])
                    if refused.any():
                        reason = f"column {name!r} is empty or not a finite number"
                        checks.append((reason, refused))
        else:
            for name, nullable in zip(self.model.columns, self._nullable, strict=True):
                column = batch.column(name)
                if column.null_count and not nullable:
                    checks.append((f"column {name!r} is empty", _is_null(column)))
                if pa.types.is_floating(column.type):
                    infinite = pc.fill_null(pc.is_inf(column), False)
                    if pc.any(infinite).as_py():
                        reason = f"column {name!r} is not a finite number"
                        checks.append((reason, arrays.to_numpy(infinite)))
        if not checks:
            return None
        for reason, mask in checks:
            for index in np.flatnonzero(mask & ~bad):
                reasons[index] = reason
            bad |= mask
        return bad, reasons

    def _rejects(
        self,
        batch: pa.RecordBatch,
        bad: tuple[np.ndarray[Any, Any], list[str]],
        first_row: int,
        run_id: str,
    ) -> pa.RecordBatch:
        indices = np.flatnonzero(bad[0])
        ids = [self._row_id(batch, int(i)) for i in indices]
        return pa.RecordBatch.from_arrays(
            [
                arrays.repeated_string(run_id, len(indices)),
                arrays.from_numpy(indices + first_row, pa.int64()),
                arrays.strings(ids),
                arrays.strings([bad[1][int(i)] for i in indices]),
            ],
            schema=REJECT_SCHEMA,
        )

    def _row_id(self, batch: pa.RecordBatch, index: int) -> str:
        values = {name: batch.column(name)[index].as_py() for name in self.id_columns}
        return orjson.dumps(values, default=str).decode()

    def _score_kept(
        self,
        features: Any,
        kept: pa.RecordBatch,
        bad: tuple[np.ndarray[Any, Any], list[str]] | None,
        batch: pa.RecordBatch,
        first_row: int,
    ) -> tuple[Scored, Any, pa.RecordBatch, tuple[np.ndarray[Any, Any], list[str]] | None]:
        """Score the rows kept. Rows the model refuses are found (see ``refusals``), then named
        or set aside; once they are gone, another of its checks may refuse others."""
        for _ in range(_REFUSAL_ROUNDS):
            try:
                return self._predict(features, kept), features, kept, bad
            except Exception as exc:
                if not is_refusal(exc):
                    raise
                refused, reasons = self._refused(features, kept, exc, first_row)
            bad = _with_scored_bad(bad, refused, batch.num_rows, reasons)
            if self.on_bad_rows == "fail":
                self._raise_first(batch, bad, first_row)
            kept = kept.filter(arrays.from_numpy(~refused, pa.bool_()))
            features = features[~refused] if isinstance(features, np.ndarray) else kept
        raise BatchInputError(
            f"input rows {first_row}-{first_row + batch.num_rows - 1}: the model still refuses "
            f"rows after {_REFUSAL_ROUNDS} rounds of setting them aside; nothing was written"
        )

    def _refused(
        self, features: Any, kept: pa.RecordBatch, exc: Exception, first_row: int
    ) -> tuple[np.ndarray[Any, Any], list[str]]:
        """The rows of ``kept`` the model refuses (a mask), and why (one reason each)."""

        def score(positions: np.ndarray[Any, Any]) -> Scored:
            subset = kept.take(arrays.from_numpy(positions, pa.int64()))
            rows = features[positions] if isinstance(features, np.ndarray) else subset
            return self._predict(rows, subset)

        fail = self.on_bad_rows == "fail"
        found = find_refused(score, kept.num_rows, exc, first_only=fail)
        if not found.positions or not (fail or found.complete):
            cause = (
                "no single row could be set aside as the cause"
                if not found.positions
                else "it refuses too many of them to set aside one by one"
            )
            raise BatchInputError(
                f"input rows {first_row}-{first_row + kept.num_rows - 1}: "
                f"{refusal_reason(exc)}; {cause}, and nothing was written"
            ) from exc
        refused = np.zeros(kept.num_rows, dtype=bool)
        refused[found.positions] = True
        reason_at = dict(zip(found.positions, found.reasons, strict=True))
        return refused, [reason_at[int(p)] for p in np.flatnonzero(refused)]

    def _predict(self, features: Any, batch: pa.RecordBatch) -> Scored:
        if isinstance(features, np.ndarray):
            if features.shape[0] == 0:
                return Scored(np.empty(0), np.empty((0, 0)))
            # A compiled model scores the checked rows column by column too, so only a score
            # that overflowed takes a (BLAS) matrix product.
            columns = [features[:, j] for j in range(features.shape[1])]
            by_columns = self.model.score_columns(columns)
            return by_columns if by_columns is not None else self.model.score(features)
        frame = batch.select(list(self.model.columns)).to_pandas()
        if frame.empty:
            return Scored(np.empty(0), np.empty((0, 0)))
        return self.model.score_frame(frame)

    def _probabilities(self, scored: Scored) -> list[pa.Array]:
        names = self.probability_columns()
        if not names:
            return []
        rows = len(scored.predictions)
        probabilities = scored.probabilities
        if probabilities is None or probabilities.shape[0] != rows or rows == 0:
            return [arrays.from_numpy(np.empty(rows), pa.float64()) for _ in names]
        if len(names) == 1:
            return [arrays.from_numpy(probabilities[:, 1], pa.float64())]
        return [arrays.from_numpy(probabilities[:, j], pa.float64()) for j in range(len(names))]


def _with_scored_bad(
    bad: tuple[np.ndarray[Any, Any], list[str]] | None,
    flagged: np.ndarray[Any, Any],
    rows: int,
    reasons: list[str] | None = None,
) -> tuple[np.ndarray[Any, Any], list[str]]:
    """``bad`` (over the whole batch) with rows found bad when scored; ``flagged`` (and
    ``reasons``, by flagged row; the score overflowed if None) are over the rows that were
    scored: the batch without ``bad``'s rows."""
    mask, all_reasons = (np.zeros(rows, dtype=bool), [""] * rows) if bad is None else bad
    scored_rows = np.flatnonzero(~mask)
    mask = mask.copy()
    for k, index in enumerate(scored_rows[flagged]):
        mask[index] = True
        all_reasons[index] = UNSCORABLE if reasons is None else reasons[k]
    return mask, all_reasons


def _prediction_array(values: np.ndarray[Any, Any], arrow_type: pa.DataType) -> pa.Array:
    if arrow_type == pa.string():
        return arrays.strings([str(v) for v in values.tolist()])
    return arrays.from_numpy(values, arrow_type)


def _is_null(column: pa.Array) -> np.ndarray[Any, Any]:
    return ~arrays.valid(column)


def _empty_ids(column: pa.Array) -> np.ndarray[Any, Any] | None:
    """Missing ids, and empty texts (an empty CSV cell is read as ``""``, not as null)."""
    empty = _is_null(column) if column.null_count else None
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        # A length cast to boolean is False for "" (comparing with a literal 0 would build
        # a pa.scalar, which imports pandas).
        blank = pc.invert(pc.cast(pc.utf8_length(column), pa.bool_()))
        if pc.any(blank).as_py():
            texts = arrays.to_numpy(blank) & arrays.valid(blank)
            empty = texts if empty is None else empty | texts
    return empty


def _column_suffix(value: Any) -> str:
    text = re.sub(r"[^0-9A-Za-z_]+", "_", str(value)).strip("_")
    return text or "class"

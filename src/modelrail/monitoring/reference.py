"""A version's reference profile, made when a run registers it (``ActiveRun.log_model``).

The run's train and test profiles were computed when the data was logged (in the same pass
as its fingerprint); what is left is the distribution of the new version's predictions, on
the run's test data (else its validation, else its train data). That is one pass of the
model over the data in batches of 65,536 rows: a file or Parquet folder is streamed, a
DataFrame or array in memory is predicted slice by slice. Nothing here may stop a
registration: a model that cannot predict the data (its label column is missing, it refuses
a value) leaves the prediction out, with a note saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.entities import ModelVersion, Signature
from modelrail.errors import InvalidInputError
from modelrail.monitoring.profiles import (
    CATEGORICAL,
    NUMERIC,
    ColumnProfile,
    DatasetProfile,
    ReferenceProfile,
)
from modelrail.monitoring.profiling import ColumnProfiler

__all__ = [
    "PREDICTED_ROLES",
    "LoggedData",
    "prediction_profile",
    "predicts_labels",
    "reference_profile",
]

log = logging.getLogger("modelrail")

PREDICTED_ROLES = ("test", "validation", "train")
BATCH_ROWS = 65_536
_NUMERIC_INPUTS = frozenset({"float64", "int64", "bool"})
_NUMERIC_OUTPUTS = frozenset({"float64", "int64"})
# A CSV's input columns read as the model takes them, rather than as inferred.
_CSV_TYPES = {"float64": pa.float64(), "int64": pa.float64(), "bool": pa.bool_()}


@dataclass(frozen=True)
class LoggedData:
    """What a run remembers of a dataset it logged, for this process: the data itself (the
    object, by reference, or the file's resolved path), its profile and its label."""

    data: Any
    profile: DatasetProfile | None
    label: str  # e.g. "test 1.2": the role and the data's version label
    problem: str | None = None  # why there is no profile


def reference_profile(
    version: ModelVersion, model: Any, logged: Mapping[str, LoggedData]
) -> ReferenceProfile:
    """The reference profile of ``version`` (just registered from ``model``) from the data
    its run logged (role -> ``LoggedData``). Never raises for the model's sake."""
    notes = [f"{role} data: {item.problem}" for role, item in logged.items() if item.problem]
    prediction: ColumnProfile | None = None
    role = next((r for r in PREDICTED_ROLES if r in logged), None)
    if role is not None:
        try:
            from modelrail.flavors import get_flavor

            predictor = get_flavor(version.flavor).predictor(model, version.flavor_details)
            prediction = prediction_profile(version.signature, predictor, logged[role].data)
        except Exception as exc:  # the user's model may raise anything; it is registered
            problem = f"{type(exc).__name__}: {exc}"
            log.warning(
                "modelrail: %s is registered without its prediction distribution: predicting "
                "its %s data failed: %s",
                version.reference,
                role,
                problem,
            )
            notes.append(f"predicting the {role} data failed: {problem}")
    train, test = logged.get("train"), logged.get("test")
    return ReferenceProfile(
        train=None if train is None else train.profile,
        test=None if test is None else test.profile,
        prediction=prediction,
        train_label=None if train is None else train.label,
        test_label=None if test is None else test.label,
        prediction_data=role if prediction is not None else None,
        notes=tuple(notes),
    )


def prediction_profile(
    signature: Signature, predictor: Any, data: Any, *, batch_rows: int = BATCH_ROWS
) -> ColumnProfile:
    """The distribution of ``predictor``'s predictions on ``data`` (anything
    ``log_dataset`` takes), predicted in batches: class labels (a classifier's, or any that
    are not numbers) as a categorical profile of the label as text, numbers as numeric."""
    from modelrail.scoring.evaluation import ModelCall

    columns = tuple(c.name for c in signature.inputs)
    numeric = all(c.dtype in _NUMERIC_INPUTS for c in signature.inputs)
    wants_frame = hasattr(predictor, "feature_names_in_")
    call = ModelCall(predictor, columns, wants_frame, has_probabilities=False)
    profiler = ColumnProfiler(CATEGORICAL if predicts_labels(signature) else NUMERIC)
    as_matrix = numeric and not wants_frame
    for chunk in _model_inputs(data, signature, numeric, as_matrix, batch_rows):
        profiler.update(call.scores(chunk).predictions)
    return profiler.finish()


def predicts_labels(signature: Signature) -> bool:
    """Whether a version's predictions are labels (profiled as categories): a classifier's
    (it has classes), or any that are not numbers."""
    outputs = {o.dtype for o in signature.outputs}
    return bool(signature.classes) or not outputs <= _NUMERIC_OUTPUTS


def _model_inputs(
    data: Any, signature: Signature, numeric: bool, as_matrix: bool, batch_rows: int
) -> Iterator[Any]:
    """``data``'s input columns in slices, as the model takes them: a float64 matrix for a
    model of numeric inputs, else a DataFrame."""
    import pandas as pd

    columns = [c.name for c in signature.inputs]
    if isinstance(data, pd.Series):
        data = data.to_frame(name="0" if data.name is None else str(data.name))
    if isinstance(data, pd.DataFrame):
        by_name = {str(c): c for c in data.columns}
        _require(columns, by_name, "DataFrame")
        frame = data[[by_name[c] for c in columns]].set_axis(columns, axis=1)
        for start in range(0, len(frame), batch_rows):
            chunk = frame.iloc[start : start + batch_rows]
            yield chunk.to_numpy(dtype=np.float64, na_value=np.nan) if as_matrix else chunk
        return
    if isinstance(data, np.ndarray):
        matrix = data.reshape(-1, 1) if data.ndim == 1 else data
        positions = {str(i): i for i in range(matrix.shape[1])} if matrix.ndim == 2 else {}
        _require(columns, positions, "array")
        picked = [positions[c] for c in columns]
        for start in range(0, matrix.shape[0], batch_rows):
            rows = matrix[start : start + batch_rows][:, picked]
            if as_matrix:
                yield rows.astype(np.float64)
            else:
                yield pd.DataFrame(rows, columns=columns)
        return
    for batch in _arrow_batches(data, signature, batch_rows):
        if numeric and as_matrix:
            yield np.column_stack([_floats(batch.column(c)) for c in columns])
        else:
            yield batch.to_pandas()


def _arrow_batches(data: Any, signature: Signature, batch_rows: int) -> Iterator[pa.RecordBatch]:
    columns = [c.name for c in signature.inputs]
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        _require(columns, {n: n for n in data.schema.names}, "table")
        yield from data.select(columns).to_batches(max_chunksize=batch_rows)
        return
    if not isinstance(data, Path):
        raise InvalidInputError(f"cannot predict data of type {type(data).__name__}")
    from modelrail.tracking.datasets import dataset_batches

    types = {c.name: _CSV_TYPES[c.dtype] for c in signature.inputs if c.dtype in _CSV_TYPES}
    yield from dataset_batches(data, columns=columns, column_types=types, batch_rows=batch_rows)


def _require(columns: list[str], present: Mapping[str, Any], what: str) -> None:
    absent = [c for c in columns if c not in present]
    if absent:
        shown = ", ".join(repr(c) for c in absent[:5]) + (" ..." if len(absent) > 5 else "")
        raise InvalidInputError(f"the {what} lacks the model's input columns {shown}")


def _floats(column: Any) -> np.ndarray[Any, Any]:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.type != pa.float64():
        column = pc.cast(column, pa.float64())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)

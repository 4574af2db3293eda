"""Running a stored fast form: each imports only its own runtime (onnxruntime, treelite or
numpy), never the library the model was trained with.

A form runner takes what production hands a predictor, a float64 matrix in signature order
(all-numeric models) or a DataFrame of the signature's columns, and gives ``Scored``: a
classifier's probabilities in the order of the signature's classes, its labels the likeliest
of them (verified against the model's own labels before the form was ever chosen), or a
regressor's values as float64.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from modelrail.entities import Signature
from modelrail.errors import InvalidRequestError, ModelFlavorError
from modelrail.scoring.columns import Columns
from modelrail.scoring.compiled import form_from_bytes
from modelrail.scoring.evaluation import Scored
from modelrail.scoring.forms.record import BATCH, COMPILED_LINEAR, ONNXRUNTIME, TREELITE

_MAX_THREADS = 4
_FEW_ROWS = 16
# What a missing text value reaches an ONNX graph as: a string no encoder was fitted on.
MISSING_TEXT = "\x00modelrail-missing"


class FormRunner(Protocol):
    kind: str

    def scores(self, data: Any) -> Scored: ...


def load_form(
    kind: str, data: bytes, details: Mapping[str, Any], signature: Signature, workload: str
) -> FormRunner:
    """The runner of a stored form, from its verified bytes."""
    if kind == ONNXRUNTIME:
        return OnnxRunner(data, details, signature, workload)
    if kind == TREELITE:
        return TreeliteRunner(data, details, signature, workload)
    if kind == COMPILED_LINEAR:
        return LinearRunner(data)
    raise ModelFlavorError(f"unknown predictor form {kind!r}: this modelrail cannot run it")


def threads(workload: str) -> int:
    """One thread for one row (more only adds hand-over latency); a few for a batch."""
    if workload != BATCH:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, cores))


class _Outputs:
    """Labels from probabilities, in the signature's classes and label type."""

    def __init__(self, signature: Signature) -> None:
        self.classifier = signature.has_probabilities and bool(signature.classes)
        dtype = signature.outputs[0].dtype if signature.outputs else "float64"
        self.classes = _classes(signature.classes, dtype)

    def classified(self, probabilities: np.ndarray[Any, Any]) -> Scored:
        proba = np.asarray(probabilities, dtype=np.float64)
        if proba.ndim == 1 or proba.shape[1] == 1:
            positive = proba.reshape(-1)
            proba = np.empty((len(positive), 2))
            proba[:, 1] = positive
            np.subtract(1.0, positive, out=proba[:, 0])
        elif not proba.flags.c_contiguous:
            proba = np.ascontiguousarray(proba)
        if proba.shape[1] != len(self.classes):
            raise InvalidRequestError(
                f"the predictor form gave {proba.shape[1]} probabilities for "
                f"{len(self.classes)} classes"
            )
        return Scored(self.classes[proba.argmax(axis=1)], proba)

    @staticmethod
    def values(values: np.ndarray[Any, Any]) -> Scored:
        return Scored(np.asarray(values, dtype=np.float64).reshape(-1), None)


def _classes(classes: tuple[Any, ...], dtype: str) -> np.ndarray[Any, Any]:
    if dtype == "string":
        return np.asarray(list(classes), dtype=object)
    if dtype == "bool":
        return np.asarray(classes, dtype=bool)
    if dtype == "int64":
        return np.asarray(classes, dtype=np.int64)
    return np.asarray(classes)


class OnnxRunner:
    """An ONNX graph in ONNX Runtime on the CPU: one 2-D input of every column (``matrix``)
    or one input per column (``columns``: text as strings, numbers as floats)."""

    kind = ONNXRUNTIME

    def __init__(
        self, data: bytes, details: Mapping[str, Any], signature: Signature, workload: str
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads(workload)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own Fail / InvalidGraph types
            raise ModelFlavorError(f"onnxruntime cannot run this form: {exc}") from exc
        self.layout = str(details.get("layout", "matrix"))
        # Fed request Columns as they are: no DataFrame built and picked apart again.
        self.takes_columns = self.layout != "matrix"
        self.float = np.float64 if details.get("float") == "float64" else np.float32
        self.output = str(details["output"])
        self.text = frozenset(details.get("text_columns", ()))
        self.columns = [c.name for c in signature.inputs]
        self.input_name = self.session.get_inputs()[0].name
        self._outputs = _Outputs(signature)

    def scores(self, data: Any) -> Scored:
        feeds = self._matrix_feed(data) if self.layout == "matrix" else self._column_feeds(data)
        try:
            found = self.session.run([self.output], feeds)[0]
        except Exception as exc:  # InvalidArgument and friends
            raise InvalidRequestError(f"the ONNX form cannot score these rows: {exc}") from exc
        if isinstance(found, list):  # ZipMap: one {class: probability} dict per row
            found = np.array([[row[k] for k in sorted(row)] for row in found], dtype=np.float64)
        if self._outputs.classifier:
            return self._outputs.classified(found)
        return self._outputs.values(found)

    def _matrix_feed(self, data: Any) -> dict[str, Any]:
        if hasattr(data, "columns"):
            data = data[self.columns].to_numpy(dtype=np.float64)
        return {self.input_name: np.ascontiguousarray(data, dtype=self.float)}

    def _column_feeds(self, data: Any) -> dict[str, Any]:
        import pandas as pd

        if isinstance(data, Columns):
            return self._feeds(dict(data.select(self.columns).items()))
        if not hasattr(data, "columns"):
            data = pd.DataFrame(np.asarray(data), columns=self.columns, copy=False)
        if len(data) <= _FEW_ROWS:
            # A request's few rows: one conversion of the whole frame costs less than
            # pandas' per-column access (tens of microseconds a column).
            ordered = data if list(data.columns) == self.columns else data[self.columns]
            values = ordered.to_numpy(dtype=object)
            columns = {name: values[:, j] for j, name in enumerate(self.columns)}
        else:
            columns = {name: data[name] for name in self.columns}
        return self._feeds(columns)

    def _feeds(self, columns: Mapping[str, Any]) -> dict[str, Any]:
        feeds: dict[str, Any] = {}
        for name, column in columns.items():
            if name in self.text:
                text = column if isinstance(column, np.ndarray) else column.to_numpy(dtype=object)
                feeds[name] = _text(text).reshape(-1, 1)
            else:
                feeds[name] = self._numbers(name, column).reshape(-1, 1)
        return feeds

    def _numbers(self, name: str, column: Any) -> np.ndarray[Any, Any]:
        try:
            if isinstance(column, np.ndarray) and column.dtype != object:
                return column.astype(self.float, copy=False)
            if isinstance(column, np.ndarray):  # objects: None for a missing value
                return np.array([np.nan if v is None else v for v in column], dtype=self.float)
            return np.asarray(column.to_numpy(dtype=self.float, na_value=np.nan))
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(
                f"column {name!r} must hold numbers: {exc}", field=name
            ) from exc


def _text(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if len(values) <= _FEW_ROWS and all(type(v) is str for v in values):
        return values.astype(str)
    import pandas as pd

    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = MISSING_TEXT
    return values.astype(str)


class TreeliteRunner:
    """A tree ensemble in Treelite's own format, run by its General Tree Inference Library
    (no compiler, no code generated)."""

    kind = TREELITE

    def __init__(
        self, data: bytes, details: Mapping[str, Any], signature: Signature, workload: str
    ) -> None:
        import treelite
        import treelite.gtil

        try:
            self.model = treelite.Model.deserialize_bytes(data)
        except Exception as exc:  # treelite.TreeliteError
            raise ModelFlavorError(f"treelite cannot read this form: {exc}") from exc
        self._predict = treelite.gtil.predict
        self.float = np.float64 if self.model.input_type == "float64" else np.float32
        self.columns = [c.name for c in signature.inputs]
        # For batches, as many threads as OpenMP allows here (-1): a Spark executor limits
        # them to its task's cores, and a larger number is an error in Treelite.
        self.threads = 1 if threads(workload) == 1 else -1
        self.round = details.get("round") == "float32"
        self._outputs = _Outputs(signature)
        self.features = list(details.get("features") or self.columns)
        self.categories = _category_indexes(details.get("categories") or {})
        self._codes = {
            name: {v: float(i) for i, v in enumerate(index.tolist())}
            for name, index in self.categories.items()
        }

    def scores(self, data: Any) -> Scored:
        if self.categories:
            data = self._coded(data)
        elif hasattr(data, "columns"):
            data = data[self.columns].to_numpy(dtype=np.float64)
        if self.round:
            data = np.asarray(data, dtype=np.float32)
        matrix = np.ascontiguousarray(data, dtype=self.float)
        found = self._predict(self.model, matrix, nthread=self.threads)
        found = found.reshape(found.shape[0], -1)
        if self._outputs.classifier:
            return self._outputs.classified(found)
        return self._outputs.values(found)

    def _coded(self, data: Any) -> np.ndarray[Any, Any]:
        """The model's features in its own order as float64, text as its category code."""
        import pandas as pd

        if not hasattr(data, "columns"):
            data = pd.DataFrame(np.asarray(data), columns=self.columns, copy=False)
        matrix = np.empty((len(data), len(self.features)), dtype=np.float64)
        if len(data) <= _FEW_ROWS:  # a request's few rows: one conversion, no pandas per column
            same = list(data.columns) == self.features
            values = (data if same else data[self.features]).to_numpy(dtype=object)
            for j, name in enumerate(self.features):
                lookup = self._codes.get(name)
                column = values[:, j]
                if lookup is None:
                    matrix[:, j] = [np.nan if v is None else v for v in column]
                else:
                    matrix[:, j] = [
                        lookup.get(v, np.nan) if isinstance(v, str) else np.nan for v in column
                    ]
            return matrix
        for j, name in enumerate(self.features):
            index = self.categories.get(name)
            if index is None:
                matrix[:, j] = pd.to_numeric(data[name], errors="raise").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
                continue
            codes = index.get_indexer(data[name].to_numpy(dtype=object)).astype(np.float64)
            codes[codes < 0] = np.nan
            matrix[:, j] = codes
        return matrix


def _category_indexes(categories: Mapping[str, Any]) -> dict[str, Any]:
    if not categories:
        return {}
    import pandas as pd

    return {str(name): pd.Index(list(values)) for name, values in categories.items()}


class LinearRunner:
    """The compiled linear form (numpy only)."""

    kind = COMPILED_LINEAR

    def __init__(self, data: bytes) -> None:
        self.form = form_from_bytes(data)

    def scores(self, data: Any) -> Scored:
        matrix = data.to_numpy(dtype=np.float64) if hasattr(data, "columns") else data
        predictions, probabilities = self.form.predict(np.asarray(matrix, dtype=np.float64))
        return Scored(predictions, probabilities)

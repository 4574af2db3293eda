"""ONNX models (a ``.onnx`` file or an ``onnx.ModelProto``), stored as given, run with ONNX Runtime.

The file is the model's own bytes: ONNX is a protobuf graph of operators, so loading it runs no
Python. At save time it is parsed (opsets, inputs, outputs, the class labels of a classifier)
and must open in ONNX Runtime, so a model this runtime cannot run is refused before anything is
registered. Weights kept in external data files are refused: a version is one file, and ONNX
Runtime would read those files from paths written inside the model.

The predictor follows the converters' conventions (skl2onnx, onnxmltools): one 2-D input of all
columns, or one input per column (then it takes a DataFrame by column name); a classifier's
outputs are the label then the probabilities (a tensor, or ZipMap's list of dicts), any other
model's first output is its prediction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from modelrail.errors import InvalidRequestError, ModelFlavorError
from modelrail.flavors.base import SaveOptions, require
from modelrail.flavors.categories import two_classes

# ONNX tensor element types -> the numpy dtype fed to ONNX Runtime.
_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}
_LABEL_TYPES = {"tensor(int64)", "tensor(int32)", "tensor(string)", "tensor(bool)"}
_MAX_THREADS = 4
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
_Outputs = tuple[np.ndarray[Any, Any], FloatArray]  # a classifier's labels and probabilities


class OnnxFlavor:
    name = "onnx"

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        onnx = require("onnx", "onnx")
        data = _model_bytes(model, onnx)
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf raises DecodeError and friends
            raise ModelFlavorError(f"this is not an ONNX model: {exc}") from exc
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
            raise ModelFlavorError(
                "this ONNX model keeps its weights in external data files: save it as one file "
                "(onnx.save_model(model, path, save_as_external_data=False)) and log that"
            )
        details: dict[str, Any] = {
            "format": "onnx",
            "estimator": f"onnx:{proto.graph.name or 'graph'}",
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
            "ir_version": int(proto.ir_version),
            "opsets": {o.domain or "ai.onnx": int(o.version) for o in proto.opset_import},
            "classes": _class_labels(proto),
            "packages": _versions("onnxruntime", "numpy"),
            "unsafe": False,
        }
        session = _session(data, details)  # refused here, not at load, when it cannot run
        for port in session.get_inputs():
            if port.type not in _DTYPES:
                raise ModelFlavorError(f"the ONNX input {port.name!r} is a {port.type}")
        details["inputs"] = [_describe(i) for i in session.get_inputs()]
        details["outputs"] = [_describe(o) for o in session.get_outputs()]
        path.write_bytes(data)
        return details

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        return _session(data, details)

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        if isinstance(model, OnnxPredictor):
            return model
        if not hasattr(model, "run"):  # at save time: the path or ModelProto the user logged
            onnx = require("onnx", "onnx")
            model = _session(_model_bytes(model, onnx), details)
        return onnx_predictor(model, details)


def _model_bytes(model: Any, onnx: Any) -> bytes:
    if isinstance(model, onnx.ModelProto):
        return bytes(model.SerializeToString())
    if isinstance(model, str | os.PathLike):
        try:
            return Path(model).read_bytes()
        except OSError as exc:
            raise ModelFlavorError(
                f"cannot read the ONNX file {os.fspath(model)!r}: {exc}"
            ) from exc
    raise ModelFlavorError(
        f"cannot log a {type(model).__module__}.{type(model).__name__} as ONNX: log an "
        "onnx.ModelProto or the path of a .onnx file"
    )


def _session(data: bytes, details: Mapping[str, Any]) -> Any:
    """An ONNX Runtime session on the CPU, from the verified bytes (never a path)."""
    ort = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    # One pool of a few threads per session, that sleeps when idle: serving runs a session in
    # each worker and batch scoring shares the machine, so ONNX Runtime's default (a spinning
    # thread per core) would make them fight over the cores.
    options.intra_op_num_threads = min(_MAX_THREADS, _cores())
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its warnings are about graph rewrites
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own Fail/InvalidGraph/... types
        saved = details.get("packages", {}).get("onnxruntime")
        opsets = ", ".join(f"{d} {v}" for d, v in sorted(details.get("opsets", {}).items()))
        checked = f"; it was checked with onnxruntime {saved}" if saved else ""
        reason = str(exc).strip().rstrip(".")
        raise ModelFlavorError(
            f"onnxruntime {ort.__version__} cannot run this ONNX model {details.get('estimator')} "
            f"(IR version {details.get('ir_version')}; opsets {opsets or 'unknown'}{checked}): "
            f"{reason}. A model from a newer converter may need a newer onnxruntime: "
            "pip install -U onnxruntime"
        ) from exc


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _class_labels(proto: Any) -> list[Any] | None:
    """The class labels of a converted classifier, in the order of its probability columns:
    ZipMap's when the graph has one, else those of the node that gives the label."""
    label = proto.graph.output[0].name if proto.graph.output else None
    found: list[Any] | None = None
    for node in proto.graph.node:
        for attribute in node.attribute:
            if not attribute.name.startswith("classlabels_"):
                continue
            values = list(attribute.ints) or [s.decode() for s in attribute.strings]
            if node.op_type == "ZipMap" or label in node.output:
                return values
            found = values if found is None else found
    return found


def _describe(port: Any) -> dict[str, Any]:
    shape = [d if isinstance(d, int) else None for d in (port.shape or [])]
    return {"name": port.name, "type": port.type, "shape": shape}


def _versions(*packages: str) -> dict[str, str]:
    # A build under another distribution name (onnxruntime-gpu) is not recorded as this one.
    installed = {p: _version(p) for p in packages}
    return {p: v for p, v in installed.items() if v is not None}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def onnx_predictor(session: Any, details: Mapping[str, Any]) -> OnnxPredictor:
    """A classifier's predictor when the outputs are a label then probabilities."""
    outputs = session.get_outputs()
    if (
        len(outputs) >= 2
        and outputs[0].type in _LABEL_TYPES
        and (outputs[1].type.startswith("seq(map(") or outputs[1].type in _DTYPES)
    ):
        return OnnxClassifier(session, details)
    return OnnxPredictor(session, details)


class OnnxPredictor:
    """``predict`` over a DataFrame or a matrix: the model's first output."""

    def __init__(self, session: Any, details: Mapping[str, Any]) -> None:
        self.session = session
        self.inputs = [
            (i.name, _DTYPES.get(i.type, np.float32), len(i.shape or []))
            for i in session.get_inputs()
        ]
        self.output_names = [o.name for o in session.get_outputs()]
        if len(self.inputs) > 1:
            # One input per column: modelrail hands over a DataFrame and each goes by name.
            self.feature_names_in_ = np.asarray([n for n, _, _ in self.inputs], dtype=object)

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        values = np.asarray(self._run(X)[0])
        values = values.astype(np.float64) if values.dtype.kind == "f" else values
        return values.reshape(-1) if values.ndim == 2 and values.shape[1] == 1 else values

    def _run(self, X: Any) -> list[Any]:
        return self._run_feeds(self._feeds(X))

    def _run_feeds(self, feeds: dict[str, Any]) -> list[Any]:
        try:
            outputs: list[Any] = self.session.run(self.output_names, feeds)
        except Exception as exc:  # ONNX Runtime's InvalidArgument and friends
            raise InvalidRequestError(f"the ONNX model cannot score these rows: {exc}") from exc
        return outputs

    def _feeds(self, X: Any) -> dict[str, Any]:
        if len(self.inputs) == 1:
            name, dtype, rank = self.inputs[0]
            values = X.to_numpy() if hasattr(X, "columns") else np.asarray(X)
            values = values.reshape(1, -1) if values.ndim == 1 and rank == 2 else values
            return {name: _typed(values, dtype, name)}
        feeds = {}
        for position, (name, dtype, rank) in enumerate(self.inputs):
            if hasattr(X, "columns"):
                if name not in X.columns:
                    raise InvalidRequestError(f"the model needs the column {name!r}", field=name)
                column = X[name].to_numpy()
            else:
                column = np.asarray(X)[:, position]
            values = _typed(column, dtype, name)
            feeds[name] = values.reshape(-1, 1) if rank == 2 else values
        return feeds


class OnnxClassifier(OnnxPredictor):
    """The label output for ``predict``, the probabilities for ``predict_proba``."""

    def __init__(self, session: Any, details: Mapping[str, Any]) -> None:
        super().__init__(session, details)
        classes = details.get("classes")
        width = session.get_outputs()[1].shape
        if classes is None and width and isinstance(width[-1], int):
            classes = list(range(width[-1]))
        if classes is not None:
            self.classes_ = np.asarray(classes)
        self._last: tuple[dict[str, Any], _Outputs] | None = None

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        # The model's own label, even where its probabilities are NaN: serving and batch
        # refuse those rows by their probabilities.
        return self._outputs(X)[0]

    def predict_proba(self, X: Any) -> FloatArray:
        return self._outputs(X)[1]

    def _outputs(self, X: Any) -> _Outputs:
        # Serving and batch ask a classifier for labels and probabilities of the same rows,
        # one call after the other: the model runs once, and the second call takes the
        # outputs the first one kept (comparing the inputs costs far less than a run).
        feeds = self._feeds(X)
        last, self._last = self._last, None
        if last is not None and _same_feeds(last[0], feeds):
            return last[1]
        labels, probabilities = self._run_feeds(feeds)[:2]
        if isinstance(probabilities, list):  # ZipMap: one {class: probability} dict per row
            import pandas as pd

            frame = pd.DataFrame.from_records(probabilities)
            probabilities = frame[list(getattr(self, "classes_", frame.columns))]
        probabilities = np.ascontiguousarray(probabilities, dtype=np.float64)
        if probabilities.ndim == 2 and probabilities.shape[1] == 2:
            # Batch tables keep a binary model's positive probability only: the other is
            # 1 - p here too (not the runtime's float32 one), so every path says the same.
            probabilities = two_classes(probabilities[:, 1])
        outputs: _Outputs = (np.asarray(labels).reshape(-1), probabilities)
        self._last = (feeds, outputs)
        return outputs


def _typed(values: Any, dtype: Any, name: str) -> Any:
    if dtype is object:
        import pandas as pd

        text = np.asarray(values, dtype=object)
        if pd.isna(text).any():
            raise InvalidRequestError(
                f"{name!r} has a missing value: this ONNX model takes text there", field=name
            )
        return text.astype(str)
    try:
        return np.ascontiguousarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{name!r} must hold numbers: {exc}", field=name) from exc


def _same_feeds(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old.keys() == new.keys() and all(
        old[k] is new[k]
        or (
            old[k].shape == new[k].shape
            and np.array_equal(old[k], new[k], equal_nan=old[k].dtype.kind == "f")
        )
        for k in new
    )

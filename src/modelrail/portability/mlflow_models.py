"""An MLflow model version's files (its ``MLmodel`` folder) as a modelrail model version.

How MLflow saved the model decides what an import may do with it, read from ``MLmodel``
and never guessed from the bytes:

* scikit-learn saved with skops: loaded with skops, trusting only types from scikit-learn,
  NumPy and SciPy that the file itself lists; anything else is left as files.
* scikit-learn (or any flavor) saved with pickle or cloudpickle: loading a pickle runs
  whatever code it names, so it is loaded only when the caller passed ``trust_pickles``,
  and then saved again in modelrail's own safe format (skops for scikit-learn).
* XGBoost, LightGBM boosters, CatBoost and ONNX files in their library's own format: loaded
  by that library (no pickle) and registered through modelrail's flavor of the same name.
* anything else (PyTorch, transformers, custom pyfunc ...): left as files, with the reason.

Every file of the MLflow model stays with the run as an artifact whatever happens here.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrail.errors import ModelrailError
from modelrail.portability.mlflow_files import read_yaml

SAFE_SKOPS_LIBRARIES = ("sklearn", "numpy", "scipy", "builtins", "collections")
# MLflow signature types -> a value of that type for an example row built from a signature.
_EXAMPLE_VALUES: dict[str, Any] = {
    "double": 0.0,
    "float": 0.0,
    "long": 0,
    "integer": 0,
    "boolean": False,
    "string": "",
}


class NotConverted(Exception):
    """The model stays as MLflow's files; ``str()`` says why."""


@dataclass(frozen=True)
class ConvertedModel:
    """A model object loaded safely from MLflow's files, with a few rows of its input."""

    model: Any
    input_example: Any
    how: str  # e.g. "skops", "xgboost ubj", "cloudpickle (trusted)"


ReadFile = Callable[[str], bytes]


def convert(read: ReadFile, *, trust_pickles: bool) -> ConvertedModel:
    """Load the MLflow model whose files ``read(relative path)`` returns."""
    with tempfile.TemporaryDirectory(prefix="modelrail-mlmodel-") as tmp:
        mlmodel = Path(tmp) / "MLmodel"
        try:
            mlmodel.write_bytes(read("MLmodel"))
        except Exception as exc:
            raise NotConverted(f"its MLmodel file cannot be read: {exc}") from exc
        try:
            spec = read_yaml(mlmodel)
        except ModelrailError as exc:
            raise NotConverted(str(exc)) from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise NotConverted("its MLmodel file names no flavors")
    flavors: dict[str, Any] = spec["flavors"]
    model, how = _load(flavors, read, trust_pickles)
    return ConvertedModel(model, _input_example(spec, read, model), how)


def _load(flavors: dict[str, Any], read: ReadFile, trust_pickles: bool) -> tuple[Any, str]:
    if "sklearn" in flavors:
        conf = flavors["sklearn"] or {}
        data = read(str(conf.get("pickled_model", "model.pkl")))
        kind = str(conf.get("serialization_format", "cloudpickle"))
        if kind == "skops":
            return _skops(data), "skops"
        return _unpickle(data, kind, trust_pickles), f"{kind} (trusted)"
    if "xgboost" in flavors:
        return _native(flavors["xgboost"], read, "xgboost", "xgboost.Booster")
    if "lightgbm" in flavors:
        conf = flavors["lightgbm"] or {}
        if str(conf.get("model_class", "")).endswith("Booster"):
            lgb = importlib.import_module("lightgbm")
            text = read(str(conf.get("data", "model.lgb"))).decode("utf-8")
            return lgb.Booster(model_str=text), "lightgbm text"
        data = read(str(conf.get("data", "model.pkl")))
        return _unpickle(data, "pickle", trust_pickles), "pickle (trusted)"
    if "catboost" in flavors:
        conf = flavors["catboost"] or {}
        catboost = importlib.import_module("catboost")
        cls = getattr(catboost, str(conf.get("model_type", "CatBoost")), None)
        if not isinstance(cls, type):
            raise NotConverted(f"unknown CatBoost model type {conf.get('model_type')!r}")
        model = cls()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.cb"
            path.write_bytes(read(str(conf.get("data", "model.cb"))))
            model.load_model(str(path), format=str(conf.get("save_format", "cbm")))
        return model, "catboost cbm"
    if "onnx" in flavors:
        conf = flavors["onnx"] or {}
        # The ONNX flavor takes the file itself; it outlives this call in a kept folder.
        folder = Path(tempfile.mkdtemp(prefix="modelrail-onnx-"))
        path = folder / "model.onnx"
        path.write_bytes(read(str(conf.get("data", "model.onnx"))))
        return path, "onnx"
    named = ", ".join(sorted(f for f in flavors if f != "python_function")) or "python_function"
    raise NotConverted(f"MLflow flavor {named} has no modelrail flavor: kept as MLflow's files")


def _skops(data: bytes) -> Any:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise NotConverted(f"its skops file cannot be read: {exc}") from exc
    foreign = [t for t in untrusted if t.split(".", 1)[0] not in SAFE_SKOPS_LIBRARIES]
    if foreign:
        raise NotConverted(
            "its skops file needs types from outside scikit-learn, NumPy and SciPy "
            f"({', '.join(sorted(foreign)[:5])}): kept as MLflow's files"
        )
    try:
        return sio.loads(data, trusted=untrusted)
    except Exception as exc:
        raise NotConverted(f"skops cannot load it: {exc}") from exc


def _unpickle(data: bytes, kind: str, trust_pickles: bool) -> Any:
    if not trust_pickles:
        raise NotConverted(
            f"MLflow saved it with {kind}, and loading a pickle can run any code: kept as "
            "MLflow's files (import again trusting pickles to convert it into skops)"
        )
    try:
        return pickle.load(io.BytesIO(data))  # the caller said to trust pickles
    except Exception as exc:
        raise NotConverted(
            f"its {kind} file does not load here: {type(exc).__name__}: {exc}"
        ) from exc


def _native(conf: Mapping[str, Any], read: ReadFile, library: str, default: str) -> tuple[Any, str]:
    """A model in its library's own file format, loaded into the class MLflow names."""
    name = str(conf.get("model_class") or default)
    module_name, _, class_name = name.rpartition(".")
    if module_name.split(".", 1)[0] != library:
        raise NotConverted(f"its model class {name!r} is not {library}'s")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise NotConverted(f"{name} cannot be imported here: {exc}") from exc
    data_file = str(conf.get("data", "model.xgb"))
    suffix = Path(data_file).suffix or ".json"
    model = cls()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"model{suffix}"
        path.write_bytes(read(data_file))
        try:
            model.load_model(str(path))
        except Exception as exc:
            raise NotConverted(f"{library} cannot load {data_file}: {exc}") from exc
    return model, f"{library} {conf.get('model_format') or suffix.lstrip('.')}"


def _input_example(spec: Mapping[str, Any], read: ReadFile, model: Any) -> Any:
    """A few rows of the model's input: MLflow's saved example, else one row built from
    its signature, else from the names the model was fitted with."""
    import pandas as pd

    info = spec.get("saved_input_example_info") or {}
    if info.get("type") == "dataframe" and info.get("artifact_path"):
        try:
            saved = json.loads(read(str(info["artifact_path"])))
            if isinstance(saved, dict) and "columns" in saved and "data" in saved:
                return pd.DataFrame(saved["data"], columns=saved["columns"])
        except Exception:  # an unreadable example falls back to the signature
            pass
    signature = spec.get("signature") or {}
    try:
        inputs = json.loads(signature.get("inputs") or "[]")
    except ValueError:
        inputs = []
    typed = [c for c in inputs if isinstance(c, dict) and c.get("type") in _EXAMPLE_VALUES]
    if typed and len(typed) == len(inputs) and all(c.get("name") for c in typed):
        return pd.DataFrame([{c["name"]: _EXAMPLE_VALUES[c["type"]] for c in typed}])
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return pd.DataFrame([[0.0] * len(names)], columns=[str(n) for n in names])
    count = getattr(model, "n_features_in_", None)
    if isinstance(count, int):
        return pd.DataFrame([[0.0] * count])
    raise NotConverted("MLflow kept no input example or column signature for it")

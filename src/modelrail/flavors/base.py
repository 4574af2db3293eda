"""The flavor protocol, and how a model object finds its flavor.

A flavor saves one family of models to one file in that family's own format and loads it back
from the file's verified bytes. The choice is explicit, never the order of a list:

1. the library that defines the model's class decides (``xgboost``, ``lightgbm``, ``catboost``,
   ``statsmodels``, ``onnx``), so an ``XGBClassifier`` is XGBoost's even though it subclasses
   scikit-learn's ``BaseEstimator``; a path to a ``.onnx`` file is ONNX;
2. a model logged with ``code_paths`` is custom Python whose code ships with the version;
3. any other scikit-learn estimator is saved with skops;
4. anything else only with ``allow_pickle=True``, recorded as unsafe.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelrail.errors import ModelFlavorError

# The modelrail extra that installs each flavor's library (named in errors when it is missing).
EXTRAS = {
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "statsmodels": "statsmodels",
    "onnx": "onnx",
}
# The library a model's class comes from -> the flavor that saves it.
_BY_LIBRARY = {
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "statsmodels": "statsmodels",
    "onnx": "onnx",
}
# Flavor name -> "module:class"; imported only when a model of that flavor is saved or loaded.
_FLAVORS = {
    "sklearn": "modelrail.flavors.sklearn:SklearnFlavor",
    "xgboost": "modelrail.flavors.xgboost:XGBoostFlavor",
    "lightgbm": "modelrail.flavors.lightgbm:LightGBMFlavor",
    "catboost": "modelrail.flavors.catboost:CatBoostFlavor",
    "statsmodels": "modelrail.flavors.statsmodels:StatsmodelsFlavor",
    "onnx": "modelrail.flavors.onnx:OnnxFlavor",
    "python": "modelrail.flavors.python_code:PythonCodeFlavor",
    "joblib": "modelrail.flavors.pickled:PickleFlavor",
}


@dataclass(frozen=True)
class SaveOptions:
    """What the user said when logging the model."""

    allow_pickle: bool = False
    code_paths: tuple[str, ...] = ()


def save_options(allow_pickle: bool, code_paths: Sequence[str | os.PathLike[str]]) -> SaveOptions:
    """The options as given to ``log_model``, checked: every code path must exist."""
    paths = tuple(os.fspath(p) for p in code_paths)
    for path in paths:
        if not Path(path).exists():
            raise ModelFlavorError(f"code path {path!r} does not exist")
    return SaveOptions(allow_pickle=bool(allow_pickle), code_paths=paths)


class Flavor(Protocol):
    name: str

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        """Write ``model`` to the single file ``path``; return what loading it needs. The
        details hold ``format``, ``packages`` ({distribution: version} the prediction needs)
        and ``unsafe`` (True when loading it can run code that is not shipped as code)."""

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        """Load the object saved by ``save`` from the file's content, already checked
        against its sha256 (never from a path, which could change after the check)."""

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        """An object with ``predict(X)`` (and ``predict_proba(X)``, ``classes_`` for a
        classifier) over a pandas DataFrame of the signature's columns, or over a float
        matrix when ``feature_names_in_`` is absent. The model itself when it has them."""


def flavor_for(model: Any, options: SaveOptions = SaveOptions()) -> Flavor:
    """The flavor that saves ``model``, chosen as the module docstring says."""
    if isinstance(model, str | os.PathLike) and Path(model).suffix.lower() == ".onnx":
        return get_flavor("onnx")
    library = type(model).__module__.split(".", 1)[0]
    if library in _BY_LIBRARY:
        return get_flavor(_BY_LIBRARY[library])
    if options.code_paths:
        return get_flavor("python")
    if not callable(getattr(model, "predict", None)):
        raise ModelFlavorError(
            f"cannot log a model of type {_type_name(model)}: it has no predict() method"
        )
    if _is_sklearn(model):
        return get_flavor("sklearn")
    if options.allow_pickle:
        return get_flavor("joblib")
    if type(model).__module__ == "__main__":
        raise ModelFlavorError(
            f"cannot log {_type_name(model)}: its class is defined in the script being run, so "
            "no other process could load it. Move the class to a file, e.g. my_model.py, import "
            "it from there and log with code_paths=['my_model.py'] to ship that code with the "
            "version"
        )
    raise ModelFlavorError(
        f"no flavor saves a {_type_name(model)} safely: log it with code_paths=[...] to ship "
        "its code, or with allow_pickle=True (or [models] allow_pickle = true in "
        "modelrail.toml) to save it with pickle (loading a pickle can run any code, so the "
        "version is marked unsafe and an environment can refuse it)"
    )


def get_flavor(name: str) -> Flavor:
    target = _FLAVORS.get(name)
    if target is None:
        raise ModelFlavorError(f"unknown model flavor {name!r}: this modelrail cannot load it")
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    flavor: Flavor = getattr(module, class_name)()
    return flavor


def require(package: str, flavor: str) -> Any:
    """Import ``package`` for ``flavor``, or say which extra installs it."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        extra = EXTRAS.get(flavor, flavor)
        raise ModelFlavorError(
            f"this model needs the {package} package, which is not installed here: "
            f"pip install 'modelrail[{extra}]'"
        ) from exc


def _is_sklearn(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a core dependency
        return False
    return isinstance(model, BaseEstimator)


def _type_name(model: Any) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"

"""LightGBM models, saved as LightGBM's own text model (never pickle).

``LGBMClassifier``, ``LGBMRegressor`` and ``LGBMRanker`` are loaded back into the same class
(with the classifier's own labels, text ones included), a ``Booster`` into a ``Booster``.
The details record what the text model does not give a scikit-learn wrapper: the class,
its labels and plain parameters, and each pandas categorical column's categories by name,
so text arrives as the codes the trees were trained on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelrail.errors import ModelFlavorError
from modelrail.flavors.base import SaveOptions, require
from modelrail.flavors.categories import (
    BoosterClassifier,
    EstimatorClassifier,
    EstimatorPredictor,
    InputColumns,
    two_classes,
)
from modelrail.flavors.native import (
    class_path,
    library_class,
    packages,
    plain,
    plain_list,
    refused,
)

FORMAT = "lightgbm-text"
_MULTICLASS = ("multiclass", "multiclassova")


class LightGBMFlavor:
    name = "lightgbm"

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        lgb = require("lightgbm", "lightgbm")
        if isinstance(model, lgb.LGBMModel):
            if callable(model.objective):
                raise ModelFlavorError(
                    f"cannot log this {type(model).__name__}: it was trained with a custom "
                    "objective function, so only raw scores can be rebuilt from the file; "
                    "log its booster_ (a Booster) to serve those raw scores"
                )
            try:
                booster = model.booster_
            except (ValueError, AttributeError) as exc:  # LGBMNotFittedError is both
                raise ModelFlavorError(
                    f"cannot log this {type(model).__name__}: it is not fitted"
                ) from exc
        elif isinstance(model, lgb.Booster):
            booster = model
        else:
            raise ModelFlavorError(
                f"cannot log a {class_path(model)}: the lightgbm flavor saves LightGBM's "
                "scikit-learn models (LGBMClassifier, LGBMRegressor, ...) and Boosters"
            )
        text = booster.model_to_string()
        path.write_bytes(text.encode("utf-8"))
        header = _header(text)
        names = booster.feature_name()
        if names == [f"Column_{i}" for i in range(len(names))]:
            names = None  # trained on a bare matrix: LightGBM made these names up
        details: dict[str, Any] = {
            "format": FORMAT,
            "estimator": class_path(model),
            "packages": packages("lightgbm", lgb.__version__),
            "unsafe": False,
            "objective": header.get("objective", "").split(" ")[0],
            "num_class": int(header.get("num_class", "1")),
            "feature_names": names,
            "categories": _categories(text, booster),
        }
        if isinstance(model, lgb.LGBMModel):
            # The plain parameters only (a RandomState or a class_weight dict is left out):
            # what predicting reads of them is plain, the rest is for the record.
            details["params"] = {k: v for k, v in model.get_params().items() if _is_plain(v)}
        if isinstance(model, lgb.LGBMClassifier):
            details["classes"] = plain_list(model.classes_)
        return details

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        lgb = require("lightgbm", "lightgbm")
        cls = library_class(details, lgb, lgb.Booster, lgb.LGBMModel)
        try:
            text = data.decode("utf-8")
            _check_complete(text)
            booster = lgb.Booster(model_str=text)
        except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
            raise refused(
                exc,
                library="lightgbm",
                installed=lgb.__version__,
                file_format="LightGBM text model",
                details=details,
            ) from exc
        if issubclass(cls, lgb.Booster):
            return booster
        return _fitted(cls, booster, details)

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        lgb = require("lightgbm", "lightgbm")
        columns = InputColumns(details.get("feature_names"), details.get("categories"))
        objective = str(details.get("objective", ""))
        if isinstance(model, lgb.LGBMClassifier):
            return EstimatorClassifier(model, columns)
        if isinstance(model, lgb.LGBMModel):
            return EstimatorPredictor(model, columns)
        if objective == "binary" or objective in _MULTICLASS:
            count = 2 if objective == "binary" else int(details.get("num_class", 1))
            return _BoosterClassifier(model, columns, count)
        return EstimatorPredictor(model, columns)  # Booster.predict gives the score itself


def _header(text: str) -> dict[str, str]:
    """The ``key=value`` lines before the first tree."""
    head = text.split("\nTree=", 1)[0]
    return dict(line.split("=", 1) for line in head.splitlines() if "=" in line)


def _check_complete(text: str) -> None:
    """Refuse a text that is not a whole model before LightGBM parses it: LightGBM 4 aborts
    the whole process (C++ ``terminate``) on a model cut short in the middle of its trees."""
    sizes = _header(text).get("tree_sizes", "").split()
    if not text.startswith("tree\n") or "\nend of trees" not in text:
        raise ValueError("not a whole LightGBM model: no header or no end of trees")
    if sizes and text.count("\nTree=") != len(sizes):
        raise ValueError(f"not a whole LightGBM model: {len(sizes)} trees announced")


def _categories(text: str, booster: Any) -> dict[str, list[Any]]:
    """Each pandas categorical column's training categories, by column name.

    LightGBM keeps them as a list in the order of the training frame's categorical
    columns, without names; the model's ``categorical_feature`` parameter says which
    columns those were. When the two do not match (ordered categoricals, or integer
    columns declared categorical beside pandas ones) no name can be given for sure."""
    found = booster.pandas_categorical or []
    if not found:
        return {}
    match = re.search(r"^\[categorical_feature: ([\d,]*)\]$", text, re.MULTILINE)
    indices = sorted(int(i) for i in match.group(1).split(",") if i) if match else []
    if len(indices) != len(found):
        raise ModelFlavorError(
            "cannot tell which columns this LightGBM model's pandas categories belong to: "
            f"it has {len(found)} pandas categorical columns and {len(indices)} categorical "
            "features; train with unordered pandas categoricals as its only categorical "
            "features (categorical_feature='auto')"
        )
    names = booster.feature_name()
    return {names[i]: plain_list(values) for i, values in zip(indices, found, strict=True)}


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _fitted(cls: type[Any], booster: Any, details: Mapping[str, Any]) -> Any:
    """A fitted ``cls`` around ``booster``. LightGBM's scikit-learn classes have no public
    way to load a model (only ``fit`` makes a fitted one), so the state ``fit`` leaves
    (lightgbm 4.x) is set here from the booster and the recorded labels; the flavor's
    tests check the result predicts exactly as the original did."""
    from sklearn.preprocessing import LabelEncoder

    model = cls(**dict(details.get("params", {})))
    model._Booster = booster
    model._n_features = model._n_features_in = booster.num_feature()
    model._fitted_with_feature_names = details.get("feature_names") is not None
    model._objective = details.get("objective") or None
    model._evals_result = {}
    model._best_iteration = booster.best_iteration
    model._best_score = {}
    if "classes" in details:
        classes = np.asarray([plain(c) for c in details["classes"]])
        encoder = LabelEncoder().fit(classes)
        model._le = encoder
        model._classes = encoder.classes_
        model._n_classes = len(encoder.classes_)
        model._class_map = {c: i for i, c in enumerate(encoder.classes_)}
    model.fitted_ = True
    return model


class _BoosterClassifier(BoosterClassifier):
    """A Booster trained for classes, as ``LGBMClassifier`` would score it."""

    def __init__(self, booster: Any, columns: InputColumns, count: int) -> None:
        super().__init__(columns, count)
        self.booster = booster

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        found = self.booster.predict(self.columns.frame(X))
        if len(self.classes_) == 2:
            return two_classes(found)
        return np.ascontiguousarray(found, dtype=np.float64)

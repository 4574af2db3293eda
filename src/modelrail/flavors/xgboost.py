"""XGBoost models, saved in XGBoost's own UBJSON format (never pickle).

``XGBClassifier``, ``XGBRegressor``, ``XGBRanker`` (and their random-forest variants) are
loaded back into the same class, a ``Booster`` into a ``Booster``. The details record what
the file alone does not tell a scikit-learn wrapper or a predictor: the class, the
objective, the ``missing`` marker (a prediction-time setting XGBoost keeps outside the
file) and the categories of each categorical column, in training order, so text arrives
as the codes the trees were trained on.
"""

from __future__ import annotations

import json
import math
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
    FramePredictor,
    InputColumns,
    two_classes,
)
from modelrail.flavors.native import (
    class_path,
    library_class,
    packages,
    plain_list,
    refused,
)

FORMAT = "ubj"
_BINARY = ("binary:logistic", "binary:logitraw")
_MULTICLASS = ("multi:softprob", "multi:softmax")


class XGBoostFlavor:
    name = "xgboost"

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        xgb = require("xgboost", "xgboost")
        if not isinstance(model, xgb.Booster | xgb.XGBModel):
            raise ModelFlavorError(
                f"cannot log a {class_path(model)}: the xgboost flavor saves XGBoost's "
                "scikit-learn models (XGBClassifier, XGBRegressor, ...) and Boosters"
            )
        try:
            booster = model if isinstance(model, xgb.Booster) else model.get_booster()
            path.write_bytes(bytes(booster.save_raw(FORMAT)))
            config = json.loads(booster.save_config())
        except (xgb.core.XGBoostError, ValueError, AttributeError) as exc:  # not fitted too
            raise ModelFlavorError(f"XGBoost cannot save this {class_path(model)}: {exc}") from exc
        learner = config["learner"]
        details: dict[str, Any] = {
            "format": FORMAT,
            "estimator": class_path(model),
            "packages": packages("xgboost", xgb.__version__),
            "unsafe": False,
            "objective": learner["objective"]["name"],
            "num_class": int(learner["learner_model_param"]["num_class"]),
            "feature_names": booster.feature_names,
            "categories": _categories(xgb, booster),
        }
        missing = getattr(model, "missing", math.nan)
        if isinstance(missing, int | float) and not math.isnan(missing):
            details["missing"] = float(missing)
        return details

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        xgb = require("xgboost", "xgboost")
        cls = library_class(details, xgb, xgb.Booster, xgb.XGBModel)
        try:
            if issubclass(cls, xgb.Booster):
                return xgb.Booster(model_file=bytearray(data))
            params = {"missing": float(details["missing"])} if "missing" in details else {}
            model = cls(**params)
            model.load_model(bytearray(data))
            return model
        except (xgb.core.XGBoostError, ValueError, TypeError) as exc:
            raise refused(
                exc,
                library="xgboost",
                installed=xgb.__version__,
                file_format="XGBoost UBJSON",
                details=details,
            ) from exc

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        xgb = require("xgboost", "xgboost")
        columns = InputColumns(details.get("feature_names"), details.get("categories"))
        objective = str(details.get("objective", ""))
        if isinstance(model, xgb.Booster):
            output = _BoosterOutput(xgb, model, columns)
            if objective in _BINARY or objective in _MULTICLASS:
                return _BoosterClassifier(output, objective, int(details.get("num_class", 0)))
            return _BoosterPredictor(output)
        if hasattr(model, "predict_proba"):
            return EstimatorClassifier(model, columns)
        return EstimatorPredictor(model, columns)


def _categories(xgb: Any, booster: Any) -> dict[str, list[Any]]:
    """Each categorical column's categories in training order (XGBoost 3.1+ keeps them in
    the model; modelrail records them too, to turn text into the same codes)."""
    if "c" not in (booster.feature_types or ()):
        return {}
    if not hasattr(booster, "get_categories"):
        raise ModelFlavorError(
            f"XGBoost {xgb.__version__} does not keep the categories of a categorical "
            "column in the model, so text could not be turned back into the codes it was "
            "trained on: log models with categorical columns with xgboost>=3.1"
        )
    found = booster.get_categories(export_to_arrow=True).to_arrow() or []
    return {str(name): plain_list(values.to_pylist()) for name, values in found if values}


class _BoosterOutput:
    """A Booster, which has no scikit-learn API: the frame goes in as a DMatrix."""

    def __init__(self, xgb: Any, booster: Any, columns: InputColumns) -> None:
        self.booster = booster
        self.columns = columns
        self._xgb = xgb

    def __call__(self, X: Any, *, margin: bool = False) -> np.ndarray[Any, Any]:
        matrix = self._xgb.DMatrix(
            self.columns.frame(X), enable_categorical=bool(self.columns.dtypes)
        )
        return np.asarray(self.booster.predict(matrix, output_margin=margin), dtype=np.float64)


class _BoosterPredictor(FramePredictor):
    """A Booster trained for a regression or ranking score."""

    def __init__(self, output: _BoosterOutput) -> None:
        super().__init__(output.columns)
        self.booster = output.booster
        self._output = output

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        return self._output(X)


class _BoosterClassifier(BoosterClassifier):
    """A Booster trained for classes, as ``XGBClassifier`` would score it."""

    def __init__(self, output: _BoosterOutput, objective: str, num_class: int) -> None:
        super().__init__(output.columns, 2 if objective in _BINARY else num_class)
        self.booster = output.booster
        self.objective = objective
        self._output = output

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        if self.objective == "binary:logistic":
            return two_classes(self._output(X))
        if self.objective == "binary:logitraw":
            with np.errstate(over="ignore"):  # exp(-margin) of a very negative margin: inf, p=0
                return two_classes(1.0 / (1.0 + np.exp(-self._output(X, margin=True))))
        if self.objective == "multi:softprob":
            return np.ascontiguousarray(self._output(X))
        # multi:softmax predicts labels only: the probabilities come from its margins.
        margin = self._output(X, margin=True)
        margin = np.exp(margin - margin.max(axis=1, keepdims=True))
        return np.ascontiguousarray(margin / margin.sum(axis=1, keepdims=True))

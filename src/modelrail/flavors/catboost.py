"""CatBoost models, saved in CatBoost's own binary format, ``cbm`` (never pickle).

``CatBoostClassifier``, ``CatBoostRegressor`` and ``CatBoostRanker`` are loaded back into the
same class; the file keeps their class labels (text ones too) and which features are
categorical. CatBoost takes categorical values as strings and scores one it never saw
from its learned priors, so text needs no recorded categories: the predictor only makes
sure every categorical value arrives as a string or an integer (a float64 matrix would
give 3.0, which CatBoost refuses) and that a missing one arrives as the string "nan"
(CatBoost refuses NaN in a categorical feature and asks for it as text). Missing numbers
go to CatBoost as NaN, which it handles natively.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelrail.errors import ModelFlavorError
from modelrail.flavors.base import SaveOptions, require
from modelrail.flavors.categories import EstimatorClassifier, EstimatorPredictor, InputColumns
from modelrail.flavors.native import class_path, library_class, packages, refused

FORMAT = "cbm"


class CatBoostFlavor:
    name = "catboost"

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        cb = require("catboost", "catboost")
        if not isinstance(model, cb.CatBoost):
            raise ModelFlavorError(
                f"cannot log a {class_path(model)}: the catboost flavor saves CatBoost's "
                "models (CatBoostClassifier, CatBoostRegressor, CatBoostRanker)"
            )
        if not model.is_fitted():
            raise ModelFlavorError(f"cannot log this {type(model).__name__}: it is not fitted")
        try:
            model.save_model(str(path), format=FORMAT)
        except cb.CatBoostError as exc:
            raise ModelFlavorError(
                f"CatBoost cannot save this {type(model).__name__}: {exc}"
            ) from exc
        names = [str(n) for n in model.feature_names_]
        return {
            "format": FORMAT,
            "estimator": class_path(model),
            "packages": packages("catboost", cb.__version__),
            "unsafe": False,
            "feature_names": names,
            # Shown and used by the predictor; the file holds them too.
            "cat_features": [names[i] for i in model.get_cat_feature_indices()],
            "text_features": [names[i] for i in model.get_text_feature_indices()],
        }

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        cb = require("catboost", "catboost")
        cls = library_class(details, cb, cb.CatBoost)
        model = cls()
        try:
            model.load_model(blob=data)
        except (cb.CatBoostError, ValueError) as exc:
            raise refused(
                exc,
                library="catboost",
                installed=cb.__version__,
                file_format="CatBoost cbm",
                details=details,
            ) from exc
        return model

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        cb = require("catboost", "catboost")
        text = [*details.get("cat_features", ()), *details.get("text_features", ())]
        columns = InputColumns(details.get("feature_names"), text=text)
        if isinstance(model, cb.CatBoostClassifier):
            return EstimatorClassifier(model, columns)
        return EstimatorPredictor(model, columns)

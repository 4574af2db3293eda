"""statsmodels results, saved as JSON data: loading one runs no code and needs no statsmodels.

The file holds what a prediction needs: the parameters, the model's inverse link, and how the
design matrix is made from the input columns: the exog columns of a model fitted on arrays or
frames (the constant column added by ``sm.add_constant`` is filled in, so callers need not send
it), or, for a formula model, the design its formula engine built (see ``statsmodels_design.py``).
Before anything is written the rebuilt predictor is checked against the result's own
``predict`` on rows from the training frame and generated rows: equal to 1e-9 or refused.

A model class, link or term outside what this module rebuilds is refused, naming why, unless
the user logs it with ``allow_pickle=True``: then it is saved the way statsmodels saves itself
(``remove_data()`` and pickle) and the version is recorded as unsafe.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from modelrail.errors import InvalidRequestError, ModelFlavorError
from modelrail.flavors.base import SaveOptions, require
from modelrail.flavors.statsmodels_design import (
    ExogColumns,
    FloatArray,
    FormulaColumns,
    FormulaDesign,
    describe_design,
    exog_layout,
    exog_names,
    verification_rows,
)

FORMAT = "statsmodels-json"
FORMAT_VERSION = 1
PICKLE_FORMAT = "statsmodels-pickle"
_THRESHOLD = 0.5  # a binary model predicts class 1 above it, as scikit-learn's classifiers do

# The model classes rebuilt from data -> the inverse link of their mean (None: the GLM family's).
_MODELS: dict[str, str | None] = {
    "statsmodels.regression.linear_model.OLS": "identity",
    "statsmodels.regression.linear_model.WLS": "identity",
    "statsmodels.regression.linear_model.GLS": "identity",
    "statsmodels.discrete.discrete_model.Logit": "logit",
    "statsmodels.discrete.discrete_model.Probit": "probit",
    "statsmodels.discrete.discrete_model.Poisson": "log",
    "statsmodels.discrete.discrete_model.NegativeBinomial": "log",
    "statsmodels.discrete.discrete_model.NegativeBinomialP": "log",
    "statsmodels.discrete.discrete_model.GeneralizedPoisson": "log",
    "statsmodels.genmod.generalized_linear_model.GLM": None,
}
_GLM_LINKS = {
    "Identity": "identity", "Log": "log", "Logit": "logit", "Probit": "probit",
    "CLogLog": "cloglog", "LogLog": "loglog", "Cauchy": "cauchy", "LogC": "logc",
    "Power": "power", "InversePower": "power", "InverseSquared": "power", "Sqrt": "power",
}  # fmt: skip
# statsmodels' own formulas, so that predictions agree to the last bits.
_INVERSE_LINKS: dict[str, Callable[[FloatArray], FloatArray]] = {
    "identity": lambda z: z,
    "log": np.exp,
    "logit": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "cloglog": lambda z: 1.0 - np.exp(-np.exp(z)),
    "loglog": lambda z: np.exp(-np.exp(-z)),
    "cauchy": lambda z: 0.5 + np.arctan(z) / np.pi,
    "logc": lambda z: 1.0 - np.exp(z),
}
_PICKLE_HINT = (
    "log it with allow_pickle=True to save it with pickle (loading a pickle can run any code, "
    "so the version is marked unsafe and an environment can refuse it)"
)


class StatsmodelsFlavor:
    name = "statsmodels"

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        result = _fitted(model)
        try:
            document = describe(result)
            _verify(result, _SafeMean(document))
        except (ModelFlavorError, AttributeError, KeyError, TypeError, ValueError) as exc:
            # A results object of a shape this module does not expect is unsupported too.
            reason = exc.message if isinstance(exc, ModelFlavorError) else f"{exc!r}"
            if not options.allow_pickle:
                raise ModelFlavorError(
                    f"cannot save this statsmodels {type(result.model).__name__} safely: {reason}. "
                    f"Fit it without that, or {_PICKLE_HINT}"
                ) from exc
            return _save_pickle(result, path, reason)
        path.write_bytes(json.dumps(document, allow_nan=False).encode())
        scipy = ["scipy"] if document["link"]["name"] == "probit" else []
        engine = [document["design"]["engine"]] if "design" in document else []
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "estimator": document["model"],
            "kind": document["kind"],
            "link": document["link"]["name"],
            "formula": getattr(result.model, "formula", None),
            "packages": _versions("numpy", "pandas", *scipy),
            # What fitted it, for provenance: loading needs none of these.
            "trained_with": _versions("statsmodels", *engine),
            "unsafe": False,
        }

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        if details.get("format") == PICKLE_FORMAT:
            return _load_pickle(data, details)
        if details.get("format") != FORMAT:
            raise ModelFlavorError(f"unknown statsmodels model format {details.get('format')!r}")
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise ModelFlavorError(f"the statsmodels model file is not JSON: {exc}") from exc
        version = document.get("format_version") if isinstance(document, dict) else None
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ModelFlavorError(
                f"this statsmodels {details.get('estimator')} model was saved by a newer "
                f"modelrail ({FORMAT} version {version}; this one reads up to {FORMAT_VERSION}): "
                "upgrade modelrail to load it"
            )
        return predictor_from_document(document)

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        if isinstance(model, StatsmodelsRegressor):
            return model
        if details.get("unsafe"):
            return _predictor(_kind(model.model), _ResultMean(model), _inputs(model))
        return predictor_from_document(describe(model))


# -- the saved document ---------------------------------------------------------------------------


def describe(result: Any) -> dict[str, Any]:
    """Everything a prediction needs, as JSON-able data; ``ModelFlavorError`` names what
    cannot be described."""
    model = result.model
    estimator = f"{type(model).__module__}.{type(model).__qualname__}"
    if estimator not in _MODELS:
        raise ModelFlavorError(f"modelrail does not rebuild {type(model).__qualname__} models")
    for attribute in ("offset", "exposure"):
        if getattr(model, attribute, None) is not None:
            raise ModelFlavorError(f"it was fitted with an {attribute}, which is not an input")
    names = exog_names(model)
    params = np.asarray(result.params, dtype=np.float64).reshape(-1)
    if params.size < len(names) or not np.isfinite(params[: len(names)]).all():
        raise ModelFlavorError("its parameters are not one finite number per exog column")
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": estimator,
        "kind": _kind(model),
        "link": _link(model, _MODELS[estimator]),
        "exog_names": names,
        "params": params[: len(names)].tolist(),
    }
    if getattr(model, "formula", None) is not None:
        design = describe_design(_formula_spec(model))
        if FormulaDesign(design).width != len(names):
            raise ModelFlavorError("its formula's design does not match the model's exog columns")
        document["design"] = design
    else:
        document["exog"] = exog_layout(model)
    return document


def _link(model: Any, fixed: str | None) -> dict[str, Any]:
    if fixed is not None:
        return {"name": fixed}
    link = model.family.link
    name = _GLM_LINKS.get(type(link).__name__)
    if name is None or type(link).__module__ != "statsmodels.genmod.families.links":
        raise ModelFlavorError(f"modelrail does not rebuild the {type(link).__name__} link")
    return {"name": name, "power": float(link.power)} if name == "power" else {"name": name}


def _kind(model: Any) -> str:
    name = type(model).__qualname__
    family = type(getattr(model, "family", None)).__name__
    return "binary" if name in ("Logit", "Probit") or family == "Binomial" else "regression"


def _inverse_link(link: Mapping[str, Any]) -> Callable[[FloatArray], FloatArray]:
    name = link.get("name")
    if name == "probit":
        special = require("scipy.special", "statsmodels")
        return special.ndtr  # type: ignore[no-any-return]
    if name == "power":
        power = float(link["power"])
        return (lambda z: z) if power == 1.0 else (lambda z: np.power(z, 1.0 / power))
    if name not in _INVERSE_LINKS:
        raise ModelFlavorError(f"unknown link {name!r}: the model was saved by a newer modelrail")
    return _INVERSE_LINKS[name]


# -- predicting ------------------------------------------------------------------------------------


class StatsmodelsRegressor:
    """``predict`` gives the model's mean prediction (``result.predict``) for the inputs."""

    def __init__(self, mean: Callable[[Any], FloatArray], inputs: tuple[str, ...] | None) -> None:
        self._mean = mean
        if inputs is not None:
            # Present only when the model knows its column names: modelrail then hands it a
            # DataFrame; a model fitted on plain arrays gets a matrix, column by position.
            self.feature_names_in_ = np.asarray(inputs, dtype=object)

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        return self._mean(X)


class StatsmodelsBinaryClassifier(StatsmodelsRegressor):
    """A binary model's ``predict`` is the probability of 1; here it gives the class, and
    ``predict_proba`` both probabilities, as scikit-learn's classifiers do."""

    # The class is 1 exactly when its probability is the larger (1 - p is exact for p >= 0.5),
    # so serving and batch may take labels from predict_proba alone.
    labels_follow_probabilities = True

    def __init__(self, mean: Callable[[Any], FloatArray], inputs: tuple[str, ...] | None) -> None:
        super().__init__(mean, inputs)
        self.classes_ = np.array([0, 1], dtype=np.int64)

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        positive = self._mean(X)
        unscored = np.flatnonzero(np.isnan(positive))
        if unscored.size:
            # statsmodels gives NaN for a row with a missing value; a class label cannot say so.
            row = int(unscored[0])
            raise InvalidRequestError(
                f"row {row}: no class without a probability (a value is missing)",
                field=f"inputs[{row}]",
            )
        return (positive > _THRESHOLD).astype(np.int64)

    def predict_proba(self, X: Any) -> FloatArray:
        positive = self._mean(X)
        proba = np.empty((len(positive), 2), dtype=np.float64)
        proba[:, 1] = positive
        np.subtract(1.0, positive, out=proba[:, 0])
        return proba


def _predictor(
    kind: str, mean: Callable[[Any], FloatArray], inputs: tuple[str, ...] | None
) -> StatsmodelsRegressor:
    if kind == "binary":
        return StatsmodelsBinaryClassifier(mean, inputs)
    return StatsmodelsRegressor(mean, inputs)


def predictor_from_document(document: Mapping[str, Any]) -> StatsmodelsRegressor:
    mean = _SafeMean(document)
    return _predictor(mean.kind, mean, mean.columns.inputs)


class _SafeMean:
    """The mean prediction from the saved data: the inverse link of ``design @ params``."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        try:
            self.columns: FormulaColumns | ExogColumns = (
                FormulaColumns(FormulaDesign(document["design"]))
                if "design" in document
                else ExogColumns(list(document["exog_names"]), document["exog"])
            )
            self.params = np.asarray(document["params"], dtype=np.float64)
            self.inverse = _inverse_link(document["link"])
            self.kind = str(document["kind"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFlavorError(f"the statsmodels model file is malformed: {exc!r}") from exc
        if self.params.shape != (self.columns.width,):
            raise ModelFlavorError("the statsmodels model file has the wrong number of parameters")

    def __call__(self, X: Any) -> FloatArray:
        design = self.columns.design(X)
        # NaN or infinite scores are the caller's to flag (serving and batch name the row).
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return np.asarray(self.inverse(design @ self.params), dtype=np.float64)


class _ResultMean:
    """The mean prediction of an unpickled results object, through its own ``predict``."""

    def __init__(self, result: Any) -> None:
        self.result = result
        model = result.model
        self.exog = None
        if getattr(model, "formula", None) is None:
            self.exog = ExogColumns(exog_names(model), exog_layout(model))

    def __call__(self, X: Any) -> FloatArray:
        data = X if self.exog is None else self.exog.design(X)
        return np.asarray(self.result.predict(data), dtype=np.float64)


def _inputs(result: Any) -> tuple[str, ...] | None:
    model = result.model
    if getattr(model, "formula", None) is None:
        return ExogColumns(exog_names(model), exog_layout(model)).inputs
    frame = getattr(model.data, "frame", None)
    if frame is None:
        return None
    outcome = str(getattr(model, "endog_names", ""))
    return tuple(str(c) for c in frame.columns if str(c) != outcome)


# -- checks and the pickle fallback ----------------------------------------------------------------


def _verify(result: Any, rebuilt: _SafeMean) -> None:
    """The rebuilt predictor must give the result's own predictions, to 1e-9."""
    sample, given = verification_rows(result, rebuilt.columns)
    try:
        expected = np.asarray(result.predict(sample), dtype=np.float64)
        found = rebuilt(given)
    except Exception as exc:  # either side may raise anything on a generated row
        raise ModelFlavorError(f"its rebuilt predictions could not be checked: {exc}") from exc
    if found.shape != expected.shape or not np.allclose(
        found, expected, rtol=1e-9, atol=1e-12, equal_nan=True
    ):
        raise ModelFlavorError("the rebuilt predictor does not reproduce its predictions")


def _save_pickle(result: Any, path: Path, reason: str) -> dict[str, Any]:
    """statsmodels' own way: a copy without the per-row arrays (``remove_data``), pickled.
    A formula model keeps its training frame: statsmodels re-runs the formula on it when
    the pickle is loaded."""
    try:
        saved = copy.deepcopy(result)
        saved.remove_data()
        path.write_bytes(pickle.dumps(saved, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # pickling errors come in many types
        raise ModelFlavorError(f"cannot pickle this statsmodels model: {exc}") from exc
    model = result.model
    spec = _formula_spec(model)
    engines = [] if spec is None else [type(spec).__module__.split(".", 1)[0]]
    return {
        "format": PICKLE_FORMAT,
        "estimator": f"{type(model).__module__}.{type(model).__qualname__}",
        "kind": _kind(model),
        "formula": getattr(model, "formula", None),
        "packages": _versions("statsmodels", "numpy", "pandas", "scipy", *engines),
        "unsafe": True,
        "why_unsafe": reason,
    }


def _load_pickle(data: bytes, details: Mapping[str, Any]) -> Any:
    packages = details.get("packages", {})
    for package in ("statsmodels", "patsy", "formulaic"):
        if package == "statsmodels" or package in packages:
            require(package, "statsmodels")
    saved = str(packages.get("statsmodels", "unknown"))
    try:
        # Opted into with allow_pickle; the bytes matched the registry's sha256. statsmodels
        # re-runs a formula model's formula on its saved training frame here.
        return pickle.loads(data)
    except Exception as exc:  # unpickling errors come in many types
        installed = _versions("statsmodels").get("statsmodels", "none")
        advice = "" if saved == installed else f"; pip install 'statsmodels=={saved}' to load it"
        raise ModelFlavorError(
            f"cannot load this pickled statsmodels {details.get('estimator')} model, saved with "
            f"statsmodels {saved} (this is statsmodels {installed}): {exc!r}{advice}"
        ) from exc


def _formula_spec(model: Any) -> Any:
    """patsy's ``DesignInfo`` or formulaic's ``ModelSpec`` (``design_info`` before 0.15)."""
    if getattr(model, "formula", None) is None:
        return None
    data = model.data
    return getattr(data, "model_spec", None) or getattr(data, "design_info", None)


def _fitted(model: Any) -> Any:
    if not hasattr(model, "params") or not hasattr(model, "model"):
        raise ModelFlavorError(
            f"cannot log a statsmodels {type(model).__name__}: log the fitted results "
            "(what .fit() returns), which hold the parameters"
        )
    return model


def _versions(*packages: str) -> dict[str, str]:
    found = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found

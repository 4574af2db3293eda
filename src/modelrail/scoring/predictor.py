"""A verified model version ready for the hot path: a float64 matrix in, predictions
(and class probabilities, where the model has them) out.

When a compiled form exists it is checked against the model itself on the input
example and on a few hundred generated rows; only an exact match of predictions
(and probabilities equal to 1e-9) lets it replace the model's own ``predict``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelrail.entities import ModelVersion
from modelrail.registry import LoadedModel
from modelrail.scoring.compiled import FloatMatrix, LinearForm, compile_model

NUMERIC_DTYPES = frozenset({"float64", "int64", "bool"})
_VERIFY_ROWS = 512


@dataclass(frozen=True)
class Scored:
    predictions: np.ndarray[Any, Any]
    probabilities: FloatMatrix | None


class ScoringModel:
    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.version: ModelVersion = loaded.version
        self.columns: tuple[str, ...] = tuple(c.name for c in loaded.version.signature.inputs)
        self.dtypes: tuple[str, ...] = tuple(c.dtype for c in loaded.version.signature.inputs)
        self.numeric = all(d in NUMERIC_DTYPES for d in self.dtypes)
        self.has_probabilities = callable(getattr(loaded.model, "predict_proba", None))
        self._wants_frame = hasattr(loaded.model, "feature_names_in_")
        self.compiled: LinearForm | None = None
        if self.numeric:
            candidate = compile_model(loaded.model)
            if candidate is not None and self._agrees(candidate):
                self.compiled = candidate

    @property
    def predictor_kind(self) -> str:
        return "compiled" if self.compiled is not None else self.version.flavor

    def score(self, X: FloatMatrix) -> Scored:
        """Score a (rows, columns) float64 matrix in signature column order."""
        if self.compiled is not None:
            predictions, probabilities = self.compiled.predict(X)
            return Scored(predictions, probabilities)
        return self._score_with_model(X)

    def score_frame(self, frame: Any) -> Scored:
        """The general path for inputs with text columns: a DataFrame in signature order."""
        model = self.loaded.model
        predictions = np.asarray(model.predict(frame))
        probabilities = np.asarray(model.predict_proba(frame)) if self.has_probabilities else None
        return Scored(predictions, probabilities)

    def _score_with_model(self, X: FloatMatrix) -> Scored:
        model = self.loaded.model
        data: Any = X
        if self._wants_frame:
            import pandas as pd

            data = pd.DataFrame(X, columns=list(self.columns), copy=False)
        with warnings.catch_warnings():
            # A model fitted on a DataFrame warns about plain arrays; the columns are in order.
            warnings.simplefilter("ignore", UserWarning)
            predictions = np.asarray(model.predict(data))
            probabilities = (
                np.asarray(model.predict_proba(data), dtype=np.float64)
                if self.has_probabilities
                else None
            )
        return Scored(predictions, probabilities)

    def _agrees(self, candidate: LinearForm) -> bool:
        sample = _verification_sample(self.loaded, len(self.columns))
        if sample is None:
            return False
        expected = self._score_with_model(sample)
        try:
            predictions, probabilities = candidate.predict(sample.copy())
        except (ValueError, TypeError, IndexError, FloatingPointError):
            return False
        if predictions.shape != expected.predictions.shape:
            return False
        if candidate.link == "identity":
            # Regression values differ from scikit-learn's in the last bit at most.
            if not np.allclose(predictions, expected.predictions, rtol=1e-9, atol=1e-12):
                return False
        elif not np.array_equal(predictions, expected.predictions):
            return False
        if (expected.probabilities is None) != (probabilities is None):
            return False
        if probabilities is not None and expected.probabilities is not None:
            return bool(np.allclose(probabilities, expected.probabilities, rtol=1e-9, atol=1e-12))
        return True


def _verification_sample(loaded: LoadedModel, width: int) -> FloatMatrix | None:
    """The input example plus rows spread around it, as a float64 matrix."""
    rows = loaded.version.input_example.get("data", [])
    try:
        example = np.asarray(rows, dtype=np.float64).reshape(-1, width)
    except (TypeError, ValueError):
        return None
    if example.size == 0 or not np.isfinite(example).all():
        return None
    rng = np.random.default_rng(0)
    centre = example.mean(axis=0)
    spread = np.maximum(example.std(axis=0), np.abs(centre) * 0.5) + 1e-3
    generated = centre + rng.normal(size=(_VERIFY_ROWS, width)) * spread * 3
    return np.vstack([example, generated])

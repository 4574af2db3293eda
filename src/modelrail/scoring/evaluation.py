"""Calling a model for predictions and class probabilities, in one evaluation where that is
verified to give the same answer.

A classifier's ``predict`` is, for the families below, the class of highest probability by
construction: computing both walks a forest or a boosted ensemble twice. For those (and for a
predictor that says so with ``labels_follow_probabilities = True``), and only when the labels
taken from the probabilities also match ``predict`` on the version's own input example, only
``predict_proba`` runs. Any other model keeps its own ``predict``: a custom classifier may
well answer 1 only above a probability of 0.8.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelrail.scoring.compiled import FloatMatrix

# Where the final estimator's class comes from, for families whose predict is the argmax of
# predict_proba (scikit-learn's SVMs are not: their labels come from the decision function).
_LIKELIEST_CLASS_MODULES = (
    "sklearn.ensemble.",
    "sklearn.tree.",
    "sklearn.linear_model.",
    "sklearn.naive_bayes.",
    "sklearn.neighbors.",
    "sklearn.neural_network.",
    "sklearn.calibration",
    "sklearn.discriminant_analysis",
    "xgboost.",
    "lightgbm.",
    "catboost.",
)


# Two classes a form scores closer than this may be tied in the model: a float32 sum is
# within 1e-6 of the model's probability (the verified tolerance), a float64 one within
# rounding.
TIE_MARGIN_FLOAT32 = 2e-6
TIE_MARGIN_FLOAT64 = 1e-9


@dataclass(frozen=True)
class Scored:
    predictions: np.ndarray[Any, Any]
    probabilities: FloatMatrix | None

    def nonfinite_rows(self) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """A mask of the rows whose prediction or probabilities are NaN or infinite, or None
        when every score is finite (the common case: one vectorised check)."""
        bad: np.ndarray[Any, np.dtype[np.bool_]] | None = None
        for values in (self.predictions, self.probabilities):
            if values is None or values.dtype.kind not in "fc" or np.isfinite(values).all():
                continue
            finite = np.isfinite(values).reshape(len(values), -1).all(axis=1)
            rows = np.logical_not(finite)
            bad = rows if bad is None else bad | rows
        return bad

    def near_ties(self, float32: bool) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
        """Rows whose two likeliest classes are all but tied, or None (the usual case).

        A fast form's rounding (float32 sums, trees added in another order) can tip such a
        row to the other class of two the model scores exactly equal, as a forest often
        does: production scores these rows with the model itself, so verification excuses
        their labels."""
        probabilities = self.probabilities
        if probabilities is None or probabilities.ndim != 2 or probabilities.shape[1] < 2:
            return None
        if probabilities.shape[1] == 2:
            margin = np.abs(probabilities[:, 1] - probabilities[:, 0])
        else:
            top = np.partition(probabilities, -2, axis=1)
            margin = top[:, -1] - top[:, -2]
        close = margin < (TIE_MARGIN_FLOAT32 if float32 else TIE_MARGIN_FLOAT64)
        return close if close.any() else None

    def without(self, rows: np.ndarray[Any, np.dtype[np.bool_]]) -> Scored:
        keep = ~rows
        probabilities = None if self.probabilities is None else self.probabilities[keep]
        return Scored(self.predictions[keep], probabilities)


@dataclass(frozen=True)
class ModelCall:
    model: Any
    columns: tuple[str, ...]
    wants_frame: bool
    has_probabilities: bool
    labels_from_probabilities: bool = False

    def scores(self, data: Any) -> Scored:
        """Predictions (and probabilities) for a float64 matrix in signature order, or for a
        DataFrame of the signature's columns."""
        if isinstance(data, np.ndarray) and self.wants_frame:
            import pandas as pd

            data = pd.DataFrame(data, columns=list(self.columns), copy=False)
        with warnings.catch_warnings():
            # A model fitted on a DataFrame warns about plain arrays; the columns are in order.
            warnings.simplefilter("ignore", UserWarning)
            if not self.has_probabilities:
                return Scored(np.asarray(self.model.predict(data)), None)
            probabilities = np.asarray(self.model.predict_proba(data), dtype=np.float64)
            if self.labels_from_probabilities:
                classes = np.asarray(self.model.classes_)
                return Scored(classes[probabilities.argmax(axis=1)], probabilities)
            return Scored(np.asarray(self.model.predict(data)), probabilities)

    def verified_single_pass(self, example: Any) -> ModelCall:
        """This call, using one evaluation when it gives ``predict``'s labels on ``example``."""
        if not self.has_probabilities or not _follows_probabilities(self.model):
            return self
        single = ModelCall(self.model, self.columns, self.wants_frame, True, True)
        try:
            both = self.scores(example)
            fast = single.scores(example)
        except Exception:  # the model may raise anything; the two calls then stay separate
            return self
        probabilities = both.probabilities
        if probabilities is None or probabilities.ndim != 2:
            return self
        if probabilities.shape[1] != len(getattr(self.model, "classes_", ())):
            return self
        same = both.predictions.shape == fast.predictions.shape and bool(
            np.all(both.predictions == fast.predictions)
        )
        return single if same else self


def _follows_probabilities(model: Any) -> bool:
    if getattr(model, "classes_", None) is None:
        return False
    if getattr(model, "labels_follow_probabilities", False) is True:
        return True
    steps = getattr(model, "steps", None)
    final = steps[-1][1] if steps else model
    return type(final).__module__.startswith(_LIKELIEST_CLASS_MODULES)

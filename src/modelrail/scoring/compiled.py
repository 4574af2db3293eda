"""Compiled forms of common scikit-learn models: the same arithmetic as the model,
done directly in numpy on a float64 matrix, without scikit-learn's per-call checks.

A compiled form is only used after it reproduced the model's own predictions on
a verification sample (see ``predictor.py``).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FloatMatrix = np.ndarray[Any, np.dtype[np.float64]]
# exp() of more than this overflows float64: the probability is then 0.0, as expit gives.
_EXP_LIMIT = 709.0


@dataclass(frozen=True)
class LinearForm:
    """``z = X @ weights + bias``, then a link: identity, logistic or softmax."""

    weights: FloatMatrix  # (features, outputs)
    bias: FloatMatrix  # (outputs,)
    link: str  # "identity", "logistic", "softmax"
    classes: np.ndarray[Any, Any] | None

    def predict(self, X: FloatMatrix) -> tuple[np.ndarray[Any, Any], FloatMatrix | None]:
        if X.shape[0] == 1 and self.link == "logistic" and self.weights.shape[1] == 1:
            return self._one_logistic_row(X)
        with np.errstate(over="ignore", invalid="ignore"):  # huge inputs: an infinite score
            z = X @ self.weights
            z += self.bias
        return self._link(z)

    def _one_logistic_row(self, X: FloatMatrix) -> tuple[np.ndarray[Any, Any], FloatMatrix]:
        # A served request's single row: one dot product and scalar arithmetic, instead of
        # the half-dozen array operations (each a microsecond of overhead) the batch needs.
        assert self.classes is not None
        score = float(X[0] @ self._column) + self._intercept
        negated = -score
        positive = 0.0 if negated > _EXP_LIMIT else 1.0 / (1.0 + math.exp(negated))
        proba = np.array([[1.0 - positive, positive]])
        return self.classes[[1 if score > 0 else 0]], proba

    @functools.cached_property
    def _column(self) -> FloatMatrix:
        return np.ascontiguousarray(self.weights[:, 0])

    @functools.cached_property
    def _intercept(self) -> float:
        return float(self.bias[0])

    def predict_columns(
        self, columns: Sequence[FloatMatrix]
    ) -> tuple[np.ndarray[Any, Any], FloatMatrix | None] | None:
        """The same scores from one 1-D array per feature (a batch's own column buffers,
        uncopied), summed a column at a time instead of through a row-major matrix.

        None when a score is not finite: then some feature was NaN or infinite (any of them
        makes its row's score so, whatever the weight), or a sum overflowed, and the caller
        has to look at the rows themselves. A finite result vouches for finite inputs."""
        rows = len(columns[0]) if len(columns) else 0
        by_output = np.empty((self.weights.shape[1], rows))
        by_output[:] = self.bias[:, None]
        term = np.empty(rows)
        # inf * 0 and inf - inf are meant to give NaN here: they are what marks a bad row.
        with np.errstate(invalid="ignore", over="ignore"):
            for column, weights in zip(columns, self.weights, strict=True):
                for output, weight in enumerate(weights):
                    np.multiply(column, weight, out=term)
                    by_output[output] += term
        if not np.isfinite(by_output).all():
            return None
        return self._link(by_output.T, by_column=True)

    def _link(
        self, z: FloatMatrix, *, by_column: bool = False
    ) -> tuple[np.ndarray[Any, Any], FloatMatrix | None]:
        """Predictions (and class probabilities) from the (rows, outputs) linear scores;
        ``by_column`` gives probabilities column-major, each class's values one contiguous
        array (for batch writers: a row-major matrix made them copy every column out)."""
        if self.link == "identity":
            return (z[:, 0] if z.shape[1] == 1 else z), None
        assert self.classes is not None
        if self.link == "logistic":
            score = z[:, 0]
            proba = np.empty((z.shape[0], 2), order="F" if by_column else "C")
            positive = proba[:, 1] if by_column else np.empty(z.shape[0])  # (no temporaries)
            # exp overflows to inf for scores below about -709: the probability is then 0.0
            # exactly, as scikit-learn's expit gives, and not worth a warning on stderr.
            with np.errstate(over="ignore"):
                np.negative(score, out=positive)
                np.exp(positive, out=positive)
            positive += 1.0
            np.reciprocal(positive, out=positive)
            if not by_column:
                proba[:, 1] = positive
            np.subtract(1.0, positive, out=proba[:, 0])
            return self.classes[(score > 0).astype(np.intp)], proba
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return self.classes[z.argmax(axis=1)], z


def form_to_bytes(form: LinearForm) -> bytes | None:
    """The form as an .npz file (no pickled objects), or None when its classes would need
    pickling (mixed or object-typed labels)."""
    arrays: dict[str, Any] = {"weights": form.weights, "bias": form.bias}
    if form.classes is not None:
        if form.classes.dtype == object:
            return None
        arrays["classes"] = form.classes
    buffer = io.BytesIO()
    np.savez(buffer, link=np.array(form.link), **arrays)
    return buffer.getvalue()


def form_from_bytes(data: bytes) -> LinearForm:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        classes = stored["classes"] if "classes" in stored.files else None
        return LinearForm(stored["weights"], stored["bias"], str(stored["link"]), classes)


def compile_model(model: Any) -> LinearForm | None:
    """A compiled form of ``model``, or None when it is not a supported shape."""
    steps = _steps(model)
    if not steps:
        return None
    *transforms, final = steps
    form = _linear(final)
    if form is None:
        return None
    for transform in reversed(transforms):
        folded = _fold_scaler(transform, form)
        if folded is None:
            return None
        form = folded
    return form


def _steps(model: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        steps = [step for _, step in model.steps if step not in (None, "passthrough")]
        return steps
    return [model]


def _linear(estimator: Any) -> LinearForm | None:
    from sklearn.linear_model import (
        ElasticNet,
        Lasso,
        LinearRegression,
        LogisticRegression,
        Ridge,
    )

    if isinstance(estimator, LogisticRegression):
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        classes = np.asarray(estimator.classes_)
        if coef.shape[0] == 1:
            return LinearForm(coef.T.copy(), intercept.copy(), "logistic", classes)
        return LinearForm(coef.T.copy(), intercept.copy(), "softmax", classes)
    if isinstance(estimator, LinearRegression | Ridge | Lasso | ElasticNet):
        coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
        intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
        return LinearForm(coef.T.copy(), intercept.copy(), "identity", None)
    return None


def _fold_scaler(transform: Any, form: LinearForm) -> LinearForm | None:
    """Fold an affine scaler into the weights: (X - shift) / scale @ W = X @ W' + b'."""
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    n_features = form.weights.shape[0]
    if isinstance(transform, StandardScaler):
        mean = transform.mean_ if transform.with_mean else np.zeros(n_features)
        scale = transform.scale_ if transform.with_std else np.ones(n_features)
        multiplier, offset = 1.0 / np.asarray(scale, np.float64), -np.asarray(mean, np.float64)
        offset = offset * multiplier
    elif isinstance(transform, MinMaxScaler):
        if transform.clip:
            return None
        multiplier, offset = np.asarray(transform.scale_), np.asarray(transform.min_)
    elif isinstance(transform, MaxAbsScaler):
        multiplier, offset = 1.0 / np.asarray(transform.scale_), np.zeros(n_features)
    else:
        return None
    # X' = X * multiplier + offset, so X' @ W + b = X @ (multiplier[:, None] * W) + (offset @ W + b)
    weights = form.weights * multiplier[:, None]
    bias = offset @ form.weights + form.bias
    return LinearForm(weights, bias, form.link, form.classes)

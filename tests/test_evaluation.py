"""Predictions and probabilities come from one evaluation of the model where that gives the
model's own labels, and from two where it would not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.svm import SVC

from modelrail.scoring.evaluation import ModelCall


class Cautious(ClassifierMixin, BaseEstimator):
    """Says 1 only when the probability of 1 is above 0.8: predict is not the likeliest class."""

    def fit(self, X: Any, y: Any) -> Cautious:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 1 / (1 + np.exp(-np.asarray(X)[:, 0]))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.8).astype(int)


def _iris() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, np.asarray(["setosa", "versicolor", "virginica"])[y]


def _call(model: Any, X: pd.DataFrame) -> ModelCall:
    call = ModelCall(model, tuple(X.columns), True, True)
    return call.verified_single_pass(X.iloc[:20])


def test_a_forest_is_evaluated_once_and_answers_as_predict_does() -> None:
    X, y = _iris()
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    call = _call(forest, X)
    assert call.labels_from_probabilities
    scored = call.scores(X.to_numpy())
    assert scored.predictions.tolist() == forest.predict(X).tolist()
    np.testing.assert_array_equal(scored.probabilities, forest.predict_proba(X))


def test_a_calibrated_svm_is_evaluated_once_and_answers_as_predict_does() -> None:
    X, y = _iris()
    svm = CalibratedClassifierCV(SVC(), ensemble=False).fit(X, y)
    call = _call(svm, X)
    assert call.labels_from_probabilities
    assert call.scores(X).predictions.tolist() == svm.predict(X).tolist()


def test_a_model_whose_labels_are_not_the_likeliest_class_keeps_its_predict() -> None:
    X = pd.DataFrame({"x": np.linspace(-3, 3, 40)})
    model = Cautious().fit(X, None)
    call = _call(model, X)
    assert not call.labels_from_probabilities
    assert call.scores(X).predictions.tolist() == model.predict(X).tolist()

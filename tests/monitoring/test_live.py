"""Live metrics on labelled predictions are scikit-learn's, on labels and predictions as the
API answers them, and judged by the policy's bounds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from modelrail.monitoring.live import (
    CLASSIFICATION,
    REGRESSION,
    Task,
    live_metrics,
    metric_name,
    reference_values,
)
from modelrail.monitoring.report import LiveMetric


def _labelled(
    labels: list[str], predictions: list[str], values: list[float] | None = None
) -> pa.Table:
    count = len(labels)
    label_values = [float(x) if _number(x) else None for x in labels]
    return pa.table(
        {
            "prediction": pa.array(predictions, pa.string()),
            "prediction_value": pa.array(values or [None] * count, pa.float64()),
            "label": pa.array(labels, pa.string()),
            "label_value": pa.array(label_values, pa.float64()),
        }
    )


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _by_name(metrics: tuple[LiveMetric, ...]) -> dict[str, LiveMetric]:
    return {m.name: m for m in metrics}


def test_binary_metrics_are_scikit_learns_with_the_second_class_positive() -> None:
    rng = np.random.default_rng(0)
    truth = rng.choice(["no", "yes"], 400).tolist()
    scores = np.clip(np.where(np.array(truth) == "yes", 0.7, 0.3) + rng.normal(0, 0.25, 400), 0, 1)
    predicted = np.where(scores > 0.5, "yes", "no").tolist()
    found = _by_name(
        live_metrics(
            _labelled(truth, predicted, scores.tolist()),
            Task(CLASSIFICATION, ("no", "yes")),
            logged={"accuracy": 0.9, "test_roc_auc": 0.95, "precision": 0.8, "recall": 0.7},
            min_live={},
            max_live={},
        )
    )
    assert list(found) == [
        "accuracy",
        "false_positive_rate",
        "precision",
        "recall",
        "roc_auc",
    ]
    expected = {
        "accuracy": skm.accuracy_score(truth, predicted),
        "precision": skm.precision_score(truth, predicted, pos_label="yes"),
        "recall": skm.recall_score(truth, predicted, pos_label="yes"),
        "roc_auc": skm.roc_auc_score(np.array(truth) == "yes", scores),
    }
    for name, value in expected.items():
        assert found[name].value == pytest.approx(value), name
    negatives = [p for t, p in zip(truth, predicted, strict=True) if t == "no"]
    fpr = found["false_positive_rate"]
    assert fpr.value == pytest.approx(negatives.count("yes") / len(negatives))
    assert fpr.reference is None
    assert found["roc_auc"].reference == 0.95
    assert all(m.labelled == 400 and m.status == "ok" for m in found.values())


def test_multiclass_string_labels_get_macro_averages_and_no_false_positive_rate() -> None:
    rng = np.random.default_rng(1)
    classes = ["bird", "cat", "dog"]
    truth = rng.choice(classes, 300).tolist()
    predicted = [t if rng.random() < 0.7 else rng.choice(classes) for t in truth]
    found = _by_name(
        live_metrics(
            _labelled(truth, predicted),
            Task(CLASSIFICATION, ("cat", "dog", "bird")),
            logged={"accuracy": 0.8, "f1_macro": 0.75, "f1": 0.7},
            min_live={"accuracy": 0.99},
            max_live={},
        )
    )
    assert list(found) == ["accuracy", "f1", "f1_macro"]
    accuracy = found["accuracy"]
    assert accuracy.value == pytest.approx(skm.accuracy_score(truth, predicted))
    assert (accuracy.status, accuracy.threshold) == ("alert", "< 0.99")
    macro = skm.f1_score(truth, predicted, average="macro")
    assert found["f1_macro"].value == pytest.approx(macro)
    assert found["f1"].value == pytest.approx(macro)


def test_regression_metrics_on_label_values_and_the_bounds_of_the_policy() -> None:
    truth = [10.0, 12.0, 9.0, 15.0, 11.0]
    predicted = [11.0, 11.5, 9.5, 13.0, 11.0]
    table = _labelled([str(t) for t in truth], [repr(p) for p in predicted], predicted)
    found = _by_name(
        live_metrics(
            table,
            Task(REGRESSION),
            logged={"mae": 0.5, "r2": 0.9, "mean_squared_error": 0.4, "test_accuracy": 0.1},
            min_live={"accuracy": 0.9},  # another kind of model's bound: not this one's
            max_live={"mae": 0.7, "rmse": 5.0},
        )
    )
    assert list(found) == ["mae", "rmse", "mse", "r2"]
    assert found["mae"].value == pytest.approx(skm.mean_absolute_error(truth, predicted))
    assert found["rmse"].value == pytest.approx(skm.root_mean_squared_error(truth, predicted))
    assert found["mse"].reference == 0.4
    assert found["r2"].value == pytest.approx(skm.r2_score(truth, predicted))
    assert (found["mae"].status, found["mae"].threshold) == ("alert", "> 0.7")
    assert found["rmse"].status == "ok"


def test_numbers_and_booleans_match_whatever_their_spelling() -> None:
    numbers = _labelled(["1", "0", "1"], ["1.0", "0", "0.0"])
    found = _by_name(
        live_metrics(numbers, Task(CLASSIFICATION), logged={}, min_live={}, max_live={})
    )
    assert found["accuracy"].value == pytest.approx(2 / 3)
    booleans = _labelled(["True", "False", "false"], ["true", "false", "true"])
    found = _by_name(
        live_metrics(booleans, Task(CLASSIFICATION), logged={}, min_live={}, max_live={})
    )
    assert found["accuracy"].value == pytest.approx(2 / 3)
    assert found["false_positive_rate"].value == pytest.approx(0.5)


def test_no_labels_is_no_data_not_a_failure() -> None:
    found = _by_name(
        live_metrics(
            _labelled([], []),
            Task(CLASSIFICATION, ("no", "yes")),
            logged={"accuracy": 0.9},
            min_live={"accuracy": 0.8},
            max_live={},
        )
    )
    accuracy = found["accuracy"]
    assert (accuracy.value, accuracy.labelled, accuracy.status) == (None, 0, "no data")
    assert accuracy.reference == 0.9


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("accuracy", ("accuracy", None)),
        ("test_accuracy", ("accuracy", "test")),
        ("accuracy_test", ("accuracy", "test")),
        ("test/f1_score", ("f1", "test")),
        ("validation_accuracy", ("accuracy", "validation")),
        ("val.roc_auc", ("roc_auc", "val")),
        ("mean_absolute_error", ("mae", None)),
    ],
)
def test_logged_metric_keys_are_read_loosely(key: str, expected: tuple[str, str | None]) -> None:
    assert metric_name(key) == expected


def test_the_reference_is_the_test_value_never_validation_or_train() -> None:
    logged = {"validation_accuracy": 0.5, "train_accuracy": 0.99, "test_accuracy": 0.8}
    assert reference_values(logged) == {"accuracy": 0.8}
    assert reference_values({**logged, "accuracy": 0.85}) == {"accuracy": 0.85}

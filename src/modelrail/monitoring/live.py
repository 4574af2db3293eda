"""Live metrics: the model's own metrics computed on logged predictions that have a label.

Which metrics: accuracy for every classifier and the false positive rate for a binary one
(mae and rmse for a regressor), plus every metric the version's run logged that labels and
predictions can give (``METRICS``), plus any the environment's policy bounds. A run's keys
are matched loosely: ``accuracy``, ``test_accuracy``, ``accuracy_test`` and ``test/accuracy``
are all accuracy (the test value is the reference), while ``validation_...`` and
``train_...`` keys are not references. Bounds come from the policy: below ``min_live`` or
above ``max_live`` is an alert.

Labels and predictions are compared as the API answers them, as text, except that numbers
compare as numbers (a label ``1`` matches a prediction ``1.0``). Classes are coded as
integers before scikit-learn sees them, so a million labelled rows take well under a second.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn import metrics as skm

from modelrail.monitoring.drift import as_numbers
from modelrail.monitoring.report import ALERT, NO_DATA, OK, LiveMetric

CLASSIFICATION = "classification"
REGRESSION = "regression"

Ints = np.ndarray[Any, np.dtype[np.int64]]
Floats = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Task:
    """What the model predicts: ``classes`` as text in the model's order (empty: taken from
    the labels and predictions). A binary classifier's second class is the positive one,
    whose probability is logged as ``prediction_value``."""

    kind: str  # CLASSIFICATION | REGRESSION
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Classes:
    codes_true: Ints
    codes_pred: Ints
    names: tuple[str, ...]
    scores: Floats | None  # positive-class probability per row, when every row has one

    @property
    def binary(self) -> bool:
        return len(self.names) == 2


def _accuracy(c: _Classes) -> float:
    return float(skm.accuracy_score(c.codes_true, c.codes_pred))


def _balanced(c: _Classes) -> float | None:
    if len(np.unique(c.codes_true)) < 2:
        return None
    return float(skm.balanced_accuracy_score(c.codes_true, c.codes_pred))


def _fpr(c: _Classes) -> float | None:
    if not c.binary:
        return None
    negatives = c.codes_true == 0
    count = int(negatives.sum())
    return float((c.codes_pred[negatives] == 1).sum() / count) if count else None


def _averaged(function: Callable[..., Any], average: str | None) -> Callable[[_Classes], float]:
    def compute(c: _Classes) -> float:
        mode = average or ("binary" if c.binary else "macro")
        extra = {"pos_label": 1} if mode == "binary" else {}
        labels = list(range(len(c.names)))
        return float(
            function(
                c.codes_true,
                c.codes_pred,
                labels=labels,
                average=mode,
                zero_division=0.0,
                **extra,
            )
        )

    return compute


def _roc_auc(c: _Classes) -> float | None:
    if not c.binary or c.scores is None or len(np.unique(c.codes_true)) < 2:
        return None
    return float(skm.roc_auc_score(c.codes_true, c.scores))


def _log_loss(c: _Classes) -> float | None:
    if not c.binary or c.scores is None:
        return None
    return float(skm.log_loss(c.codes_true, c.scores, labels=[0, 1]))


CLASSIFIER_METRICS: dict[str, Callable[[_Classes], float | None]] = {
    "accuracy": _accuracy,
    "balanced_accuracy": _balanced,
    "false_positive_rate": _fpr,
    "precision": _averaged(skm.precision_score, None),
    "recall": _averaged(skm.recall_score, None),
    "f1": _averaged(skm.f1_score, None),
    "roc_auc": _roc_auc,
    "log_loss": _log_loss,
}
for _average in ("macro", "micro", "weighted"):
    for _name, _function in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        CLASSIFIER_METRICS[f"{_name}_{_average}"] = _averaged(_function, _average)


def _least(
    function: Callable[..., Any], count: int = 1
) -> Callable[[Floats, Floats], float | None]:
    def compute(truth: Floats, predicted: Floats) -> float | None:
        return float(function(truth, predicted)) if len(truth) >= count else None

    return compute


REGRESSOR_METRICS: dict[str, Callable[[Floats, Floats], float | None]] = {
    "mae": _least(skm.mean_absolute_error),
    "mse": _least(skm.mean_squared_error),
    "rmse": _least(skm.root_mean_squared_error),
    "r2": _least(skm.r2_score, 2),
    "mape": _least(skm.mean_absolute_percentage_error),
    "median_absolute_error": _least(skm.median_absolute_error),
    "max_error": _least(skm.max_error),
    "explained_variance": _least(skm.explained_variance_score, 2),
}
METRICS = frozenset(CLASSIFIER_METRICS) | frozenset(REGRESSOR_METRICS)
ALWAYS = {CLASSIFICATION: ("accuracy", "false_positive_rate"), REGRESSION: ("mae", "rmse")}
_ALIASES = {
    "accuracy_score": "accuracy",
    "acc": "accuracy",
    "fpr": "false_positive_rate",
    "f1_score": "f1",
    "precision_score": "precision",
    "recall_score": "recall",
    "auc": "roc_auc",
    "roc_auc_score": "roc_auc",
    "logloss": "log_loss",
    "mean_absolute_error": "mae",
    "mean_squared_error": "mse",
    "root_mean_squared_error": "rmse",
    "r2_score": "r2",
    "mean_absolute_percentage_error": "mape",
    "explained_variance_score": "explained_variance",
}
_ROLE = re.compile(r"^(test|validation|val|valid|train|training)[_./-](.+)$|^(.+)[_./-](test)$")


def metric_name(key: str) -> tuple[str, str | None]:
    """A logged metric key as (the metric it is, the data role it names or None):
    ``test_accuracy`` -> ("accuracy", "test"), ``validation_f1`` -> ("f1", "validation")."""
    text = key.strip().lower()
    role = None
    found = _ROLE.match(text)
    if found:
        role = found.group(1) or found.group(4)
        text = found.group(2) or found.group(3)
    return _ALIASES.get(text, text), role


def reference_values(logged: Mapping[str, float]) -> dict[str, float]:
    """The metric -> value a run logged for its test data: a key without a role first, then
    a ``test`` one; validation and train values are left out."""
    found: dict[str, float] = {}
    for wanted_role in ("test", None):  # the keys without a role win
        for key, value in logged.items():
            name, role = metric_name(key)
            if role == wanted_role and isinstance(value, int | float) and math.isfinite(value):
                found[name] = float(value)
    return found


def live_metrics(
    labelled: pa.Table,
    task: Task,
    *,
    logged: Mapping[str, float],
    min_live: Mapping[str, float],
    max_live: Mapping[str, float],
) -> tuple[LiveMetric, ...]:
    """Every metric that applies to ``task`` on ``labelled`` predictions (columns
    ``prediction``, ``prediction_value``, ``label``, ``label_value``), against the run's
    ``logged`` values and the policy's bounds."""
    references = reference_values(logged)
    lower = {metric_name(k)[0]: v for k, v in min_live.items()}
    upper = {metric_name(k)[0]: v for k, v in max_live.items()}
    table = CLASSIFIER_METRICS if task.kind == CLASSIFICATION else REGRESSOR_METRICS
    names = list(ALWAYS[task.kind])
    names += sorted(n for n in references if n in table and n not in names)
    # A bound on a metric of the other kind (a policy's accuracy for a regressor) is not
    # this model's; an unknown name is shown, without a value, so a typo is seen.
    names += sorted(
        n for n in {*lower, *upper} if n not in names and (n in table or n not in METRICS)
    )
    values, classes = _compute(labelled, task, [n for n in names if n in table])
    count = labelled.num_rows
    result = []
    multiclass = max(len(task.classes), classes) > 2
    for name in names:
        if name == "false_positive_rate" and multiclass:
            continue  # no single negative class
        value = values.get(name)
        threshold = None
        status = OK if value is not None else NO_DATA
        if name in lower:
            threshold = f"< {lower[name]:g}"
            if value is not None and value < lower[name]:
                status = ALERT
        if name in upper:
            threshold = f"> {upper[name]:g}"
            if value is not None and value > upper[name]:
                status = ALERT
        result.append(LiveMetric(name, references.get(name), value, count, threshold, status))
    return tuple(result)


def _compute(labelled: pa.Table, task: Task, names: Sequence[str]) -> tuple[dict[str, float], int]:
    """The metrics ``names`` on ``labelled``, and the number of classes seen (0: none)."""
    found: dict[str, float] = {}
    if labelled.num_rows == 0 or not names:
        return found, 0
    if task.kind == REGRESSION:
        truth = _numbers(labelled.column("label_value"), labelled.column("label"))
        predicted = _numbers(labelled.column("prediction_value"), labelled.column("prediction"))
        keep = np.isfinite(truth) & np.isfinite(predicted)
        truth, predicted = truth[keep], predicted[keep]
        for name in names:
            value = REGRESSOR_METRICS[name](truth, predicted)
            if value is not None and math.isfinite(value):
                found[name] = value
        return found, 0
    classes = encode_classes(labelled, task.classes)
    if classes is None:
        return found, 0
    for name in names:
        try:
            value = CLASSIFIER_METRICS[name](classes)
        except ValueError:  # scikit-learn: not defined for these labels
            value = None
        if value is not None and math.isfinite(value):
            found[name] = value
    return found, len(classes.names)


def encode_classes(labelled: pa.Table, classes: Sequence[str] = ()) -> _Classes | None:
    """Labels and predictions as class codes (0..n-1, the model's order when ``classes``
    is given, else sorted: numbers by value, so the positive class of 0/1 or false/true is
    the second, as scikit-learn orders them); None when no row has both."""
    truth = comparable_text(labelled.column("label"))
    predicted = comparable_text(labelled.column("prediction"))
    both = pc.and_(pc.is_valid(truth), pc.is_valid(predicted))
    if pc.all(both).as_py() is False:
        truth, predicted = truth.filter(both), predicted.filter(both)
        scores_column = labelled.column("prediction_value").filter(both)
    else:
        scores_column = labelled.column("prediction_value")
    if len(truth) == 0:
        return None
    known = list(comparable_text(pa.array(list(classes), pa.string())).to_pylist())
    seen = pc.unique(pa.concat_arrays([truth, predicted])).to_pylist()
    extra = _ordered([v for v in seen if v not in set(known)])
    names = tuple(str(v) for v in [*known, *extra])
    value_set = pa.array(names, pa.string())
    codes_true = pc.index_in(truth, value_set=value_set).to_numpy().astype(np.int64)
    codes_pred = pc.index_in(predicted, value_set=value_set).to_numpy().astype(np.int64)
    scores = None
    if scores_column.null_count == 0 and len(scores_column):
        values = np.asarray(scores_column.to_numpy(), dtype=np.float64)
        if np.all((values >= 0.0) & (values <= 1.0)):
            scores = values
    return _Classes(codes_true, codes_pred, names, scores)


def comparable_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Labels as text that compares across sources: numbers in one spelling (``1.0`` and
    ``1`` are ``1``), booleans lower case (``True`` is ``true``); other text as it is."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if len(array) > 64:
        # A few distinct labels in many rows: spell each distinct one once.
        coded = array.cast(pa.string()).dictionary_encode()
        return pc.take(comparable_text(coded.dictionary), coded.indices)
    text = array.cast(pa.string())
    try:
        numbers = pc.cast(pc.utf8_trim_whitespace(text), pa.float64())
    except pa.ArrowInvalid:
        lowered = pc.utf8_lower(text)
        is_bool = pc.is_in(lowered, value_set=pa.array(["true", "false"]))
        if pc.all(pc.or_(is_bool, pc.is_null(text))).as_py() is not False:
            return lowered
        return text
    finite = pc.is_finite(numbers)
    whole = pc.and_(finite, pc.equal(numbers, pc.floor(numbers)))
    as_int = pc.if_else(whole, numbers, pa.scalar(None, pa.float64()))
    int_text = pc.cast(pc.cast(as_int, pa.int64()), pa.string())
    return pc.if_else(whole, int_text, pc.cast(numbers, pa.string()))


def _ordered(values: list[Any]) -> list[Any]:
    try:
        return sorted(values, key=float)
    except (TypeError, ValueError):
        return sorted(values, key=str)


def _numbers(values: pa.ChunkedArray, text: pa.ChunkedArray) -> Floats:
    """The numbers of ``values``, or where they are missing, of ``text`` (NaN if not one)."""
    numbers = np.asarray(
        pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    gaps = np.isnan(numbers)
    if gaps.any():
        numbers[gaps] = as_numbers(text.combine_chunks().cast(pa.string()))[gaps]
    return numbers

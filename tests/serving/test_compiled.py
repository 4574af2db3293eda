"""The compiled (numpy) predictor: the same answers as scikit-learn, used only where it was
verified to give them, and never used when it is wrong."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, PolynomialFeatures, StandardScaler

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.scoring import compiled as compiled_module
from modelrail.scoring import predictor as predictor_module
from modelrail.scoring.compiled import LinearForm
from modelrail.scoring.predictor import ScoringModel

Data = tuple[pd.DataFrame, np.ndarray]


def _cancer() -> Data:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y.to_numpy()


def _iris() -> Data:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y.to_numpy()


def _iris_two_classes() -> Data:
    X, y = _iris()
    keep = y > 0  # versicolor and virginica: not separable, so the weights stay finite
    return X[keep].reset_index(drop=True), y[keep]


def _iris_names() -> Data:
    X, y = _iris()
    return X, np.asarray(load_iris().target_names)[y]


def _diabetes() -> Data:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y.to_numpy()


DATASETS: dict[str, Callable[[], Data]] = {
    "cancer": _cancer,
    "iris": _iris,
    "iris2": _iris_two_classes,
    "iris-names": _iris_names,
    "diabetes": _diabetes,
}

# name: (dataset, fit on a DataFrame?, a fresh estimator)
COMPILABLE: dict[str, tuple[str, bool, Callable[[], Any]]] = {
    "logistic-binary": ("iris2", True, lambda: LogisticRegression(max_iter=1000)),
    "logistic-binary-on-arrays": ("iris2", False, lambda: LogisticRegression(max_iter=1000)),
    "logistic-multinomial": ("iris", True, lambda: LogisticRegression(max_iter=1000)),
    "logistic-string-labels": ("iris-names", False, lambda: LogisticRegression(max_iter=1000)),
    "standard-logistic-binary": (
        "cancer",
        True,
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    ),
    "minmax-logistic-binary": (
        "cancer",
        True,
        lambda: make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=5000)),
    ),
    "maxabs-logistic-multinomial": (
        "iris",
        True,
        lambda: make_pipeline(MaxAbsScaler(), LogisticRegression(max_iter=1000)),
    ),
    "standard-minmax-logistic-multinomial": (
        "iris",
        False,
        lambda: make_pipeline(StandardScaler(), MinMaxScaler(), LogisticRegression(max_iter=1000)),
    ),
    "standard-without-mean-logistic": (
        "cancer",
        True,
        lambda: make_pipeline(StandardScaler(with_mean=False), LogisticRegression(max_iter=2000)),
    ),
    "passthrough-step-logistic": (
        "iris",
        True,
        lambda: Pipeline(
            [("nothing", "passthrough"), ("model", LogisticRegression(max_iter=1000))]
        ),
    ),
    "linear-regression": ("diabetes", True, lambda: LinearRegression()),
    "linear-regression-on-arrays": ("diabetes", False, lambda: LinearRegression()),
    "ridge": ("diabetes", True, lambda: Ridge(alpha=0.3)),
    "standard-ridge": ("diabetes", True, lambda: make_pipeline(StandardScaler(), Ridge())),
    "minmax-linear-regression": (
        "diabetes",
        True,
        lambda: make_pipeline(MinMaxScaler(), LinearRegression()),
    ),
    "maxabs-ridge": ("diabetes", False, lambda: make_pipeline(MaxAbsScaler(), Ridge(alpha=2.0))),
}

NOT_COMPILABLE: dict[str, tuple[str, bool, Callable[[], Any]]] = {
    "random-forest": (
        "cancer",
        True,
        lambda: RandomForestClassifier(n_estimators=8, max_depth=3, random_state=0),
    ),
    "polynomial-features-logistic": (
        "iris",
        True,
        lambda: make_pipeline(
            PolynomialFeatures(degree=2), StandardScaler(), LogisticRegression(max_iter=2000)
        ),
    ),
    "clipping-minmax-logistic": (
        "iris",
        True,
        lambda: make_pipeline(MinMaxScaler(clip=True), LogisticRegression(max_iter=1000)),
    ),
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    root = tmp_path_factory.mktemp("compiled-project")
    init_project(root)
    with Client(settings=load_settings(cwd=root, environ={}, create=False), user="t") as made:
        yield made


@pytest.fixture(scope="module")
def registered(client: Client) -> dict[str, Any]:
    """Every model above, fitted and registered once: name -> fitted estimator."""
    fitted = {}
    for name, (dataset, on_frame, make) in {**COMPILABLE, **NOT_COMPILABLE}.items():
        X, y = DATASETS[dataset]()
        data = X if on_frame else X.to_numpy()
        model = make().fit(data, y)
        client.register_model(model, name, input_example=data[:5])
        fitted[name] = model
    return fitted


def inputs_for(name: str) -> tuple[np.ndarray, Any]:
    """The whole dataset and rows spread well beyond it, as the server's float64 matrix and
    as what the model was fitted on."""
    dataset, on_frame, _ = {**COMPILABLE, **NOT_COMPILABLE}[name]
    X, _ = DATASETS[dataset]()
    rng = np.random.default_rng(7)
    wide = (
        X.to_numpy().mean(axis=0)
        + rng.normal(size=(300, X.shape[1])) * X.to_numpy().std(axis=0) * 4
    )
    matrix = np.ascontiguousarray(np.vstack([X.to_numpy(), wide]), dtype=np.float64)
    return matrix, (pd.DataFrame(matrix, columns=X.columns) if on_frame else matrix)


def assert_same_as_scikit_learn(scoring: ScoringModel, model: Any, name: str) -> None:
    matrix, native = inputs_for(name)
    scored = scoring.score(matrix.copy())
    expected = np.asarray(model.predict(native))
    if hasattr(model, "predict_proba"):
        assert scored.predictions.dtype == expected.dtype
        np.testing.assert_array_equal(scored.predictions, expected)
        assert scored.probabilities is not None
        np.testing.assert_allclose(
            scored.probabilities, model.predict_proba(native), rtol=1e-9, atol=1e-12
        )
    else:
        np.testing.assert_allclose(scored.predictions, expected, rtol=1e-10, atol=1e-9)
        assert scored.probabilities is None


@pytest.mark.parametrize("name", COMPILABLE)
def test_supported_linear_models_are_compiled(
    client: Client, registered: dict[str, Any], name: str
) -> None:
    scoring = ScoringModel(client.load_model(f"{name}:1"))
    assert scoring.compiled is not None
    assert scoring.predictor_kind == "compiled-linear"


@pytest.mark.parametrize("name", COMPILABLE)
def test_the_compiled_predictor_reproduces_scikit_learn(
    client: Client, registered: dict[str, Any], name: str
) -> None:
    scoring = ScoringModel(client.load_model(f"{name}:1"))
    assert_same_as_scikit_learn(scoring, registered[name], name)
    # Checked directly too, whether or not the server chose to use it.
    form = compiled_module.compile_model(registered[name])
    assert form is not None
    matrix, native = inputs_for(name)
    by_columns = form.predict_columns([matrix[:, j].copy() for j in range(matrix.shape[1])])
    assert by_columns is not None
    for predictions, probabilities in (form.predict(matrix.copy()), by_columns):
        if form.link == "identity":
            np.testing.assert_allclose(predictions, registered[name].predict(native), rtol=1e-10)
        else:
            np.testing.assert_array_equal(predictions, registered[name].predict(native))
            np.testing.assert_allclose(
                probabilities, registered[name].predict_proba(native), rtol=1e-9, atol=1e-12
            )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["logistic-binary", "logistic-multinomial", "linear-regression"])
def test_scoring_by_columns_gives_no_answer_when_a_feature_is_not_finite(
    registered: dict[str, Any], name: str, bad: float
) -> None:
    """Batch scoring skips its row checks when the column-wise scores are all finite, so a
    single NaN or infinite feature must spoil them, even where its weight is zero."""
    form = compiled_module.compile_model(registered[name])
    assert form is not None
    matrix, _ = inputs_for(name)
    columns = [matrix[:, j].copy() for j in range(matrix.shape[1])]
    assert form.predict_columns(columns) is not None
    zero_weight = replace(form, weights=form.weights.copy())
    zero_weight.weights[2] = 0.0
    columns[2][17] = bad
    assert form.predict_columns(columns) is None
    assert zero_weight.predict_columns(columns) is None


@pytest.mark.parametrize("name", NOT_COMPILABLE)
def test_unsupported_models_fall_back_to_scikit_learn(
    client: Client, registered: dict[str, Any], name: str
) -> None:
    scoring = ScoringModel(client.load_model(f"{name}:1"))
    assert scoring.compiled is None
    assert compiled_module.compile_model(registered[name]) is None
    assert scoring.predictor_kind == "sklearn"
    assert_same_as_scikit_learn(scoring, registered[name], name)


def _perturb_weights(form: LinearForm) -> LinearForm:
    return replace(form, weights=form.weights * (1 + 1e-6))


def _shift_bias(form: LinearForm) -> LinearForm:
    return replace(form, bias=form.bias + 1e-6 * (1 + np.abs(form.bias)))


def _reverse_classes(form: LinearForm) -> LinearForm:
    assert form.classes is not None
    return replace(form, classes=form.classes[::-1].copy())


def _drop_a_feature(form: LinearForm) -> LinearForm:
    weights = form.weights.copy()
    weights[np.argmin(np.abs(weights).sum(axis=1))] = 0.0
    return replace(form, weights=weights)


def _wrong_link(form: LinearForm) -> LinearForm:
    return replace(form, link="softmax" if form.link == "logistic" else "logistic")


def _wrong_shape(form: LinearForm) -> LinearForm:
    return replace(form, weights=form.weights[:-1])


WRONG_FORMS: dict[str, Callable[[LinearForm], LinearForm]] = {
    "weights off by one part in a million": _perturb_weights,
    "bias off by one part in a million": _shift_bias,
    "classes in the wrong order": _reverse_classes,
    "least important feature dropped": _drop_a_feature,
    "logistic and softmax swapped": _wrong_link,
    "weights of the wrong shape": _wrong_shape,
}
CLASSIFIER_ONLY = {"classes in the wrong order", "logistic and softmax swapped"}
WRONG_CASES = [
    pytest.param(name, wrong, id=f"{name}-{wrong}")
    for name in ("standard-logistic-binary", "maxabs-logistic-multinomial", "linear-regression")
    for wrong in WRONG_FORMS
    if not (name == "linear-regression" and wrong in CLASSIFIER_ONLY)
]


@pytest.mark.parametrize(("name", "wrong"), WRONG_CASES)
def test_a_compiled_form_that_disagrees_with_the_model_is_never_used(
    client: Client,
    registered: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    wrong: str,
) -> None:
    real = compiled_module.compile_model
    offered: list[LinearForm] = []

    def compile_wrongly(model: Any) -> LinearForm | None:
        form = real(model)
        assert form is not None
        offered.append(WRONG_FORMS[wrong](form))
        return offered[-1]

    monkeypatch.setattr(predictor_module, "compile_model", compile_wrongly)
    scoring = ScoringModel(client.load_model(f"{name}:1"))
    assert len(offered) == 1  # it was offered the wrong form...
    assert scoring.compiled is None  # ...and refused it, answering with scikit-learn
    assert scoring.predictor_kind == "sklearn"
    assert_same_as_scikit_learn(scoring, registered[name], name)

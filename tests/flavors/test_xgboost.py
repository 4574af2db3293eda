"""XGBoost models are saved in XGBoost's own UBJSON format and predict exactly as before:
loaded back, and as serving and batch scoring score them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelrail.client import Client
from modelrail.errors import ModelFlavorError
from modelrail.registry import loaded_from_bytes
from tests.flavors.tree_data import (
    TRAIN_ROWS,
    UNSEEN,
    assert_batch_scores,
    assert_booster_scores,
    assert_gates_pass,
    assert_refused_as_newer,
    assert_same,
    assert_scores_like,
    assert_served_over_http,
    assert_stored_natively,
    binary,
    block_import,
    fair,
    fair_held_out,
    multiclass,
    regression,
    stored_file,
    two_columns,
    with_missing,
)

xgb = pytest.importorskip("xgboost")

TREES = {"n_estimators": 8, "max_depth": 3, "n_jobs": 1}


def _log(client: Client, model: object, example: object, name: str = "xgb") -> object:
    with client.start_run("xgboost") as run:
        return run.log_model(model, name, input_example=example)


@pytest.mark.parametrize("data", [binary, multiclass], ids=["binary", "multiclass"])
def test_classifier_is_stored_as_ubjson_and_predicts_as_before(client: Client, data) -> None:
    split = data()
    model = xgb.XGBClassifier(**TREES).fit(split.train, split.y)
    version = _log(client, model, split.train[:5])

    assert_stored_natively(client, version, model, file_format="ubj", magic=b"{")  # UBJSON
    assert version.signature.classes == tuple(range(len(np.unique(split.y))))
    loaded = assert_scores_like(client, version, model, split.test)
    assert type(loaded) is xgb.XGBClassifier


def test_a_prediction_server_answers_both_protocols(sqlite_client: Client) -> None:
    split = multiclass()
    model = xgb.XGBClassifier(**TREES).fit(split.train, split.y)
    version = _log(sqlite_client, model, split.train[:5])

    assert_served_over_http(sqlite_client, version, split.test[:8])


def test_regressor_predicts_as_before(client: Client) -> None:
    split = regression()
    model = xgb.XGBRegressor(**TREES).fit(split.train, split.y)
    version = _log(client, model, split.train[:5])

    assert type(assert_scores_like(client, version, model, split.test)) is xgb.XGBRegressor


@pytest.mark.parametrize(
    ("objective", "named"),
    [
        ("reg:squarederror", False),
        ("binary:logistic", False),
        ("binary:logistic", True),
        ("binary:logitraw", False),
        ("multi:softprob", False),
        ("multi:softmax", True),
    ],
)
def test_booster_loads_as_a_booster_and_scores_by_its_objective(
    sqlite_client: Client, objective: str, named: bool
) -> None:
    split = multiclass() if objective.startswith("multi") else binary()
    train = split.train if named else split.train.to_numpy()
    params = {"objective": objective, "max_depth": 3, "nthread": 1}
    if objective.startswith("multi"):
        params["num_class"] = 3
    booster = xgb.train(params, xgb.DMatrix(train, label=split.y), num_boost_round=6)
    version = _log(sqlite_client, booster, train[:5])

    test = split.test if named else split.test.to_numpy()
    raw = booster.predict(xgb.DMatrix(test))
    expected, probabilities = raw, None  # a regression, and multi:softmax's labels (as floats)
    if objective == "binary:logistic":
        expected, probabilities = (raw > 0.5).astype(int), two_columns(raw)
    if objective == "binary:logitraw":
        expected = (booster.predict(xgb.DMatrix(test), output_margin=True) > 0).astype(int)
    if objective == "multi:softprob":
        expected, probabilities = np.argmax(raw, axis=1), raw
    loaded = assert_booster_scores(sqlite_client, version, test, expected, probabilities)
    assert type(loaded) is xgb.Booster
    if objective.startswith(("binary", "multi")):
        assert version.signature.has_probabilities
        total = sqlite_client.load_model("xgb").predict_proba(test).sum(axis=1)
        np.testing.assert_allclose(total, 1.0, rtol=1e-6)


def test_missing_values_take_the_trees_default_branches(client: Client) -> None:
    split = with_missing(binary())
    model = xgb.XGBClassifier(**TREES).fit(split.train, split.y)
    version = _log(client, model, split.train[:5])
    assert split.test.isna().any(axis=1).mean() > 0.5

    assert_scores_like(client, version, model, split.test)


def test_a_missing_marker_other_than_nan_is_kept(sqlite_client: Client) -> None:
    split = with_missing(regression())
    train, test = split.train.fillna(-999.0), split.test.fillna(-999.0)
    model = xgb.XGBRegressor(missing=-999.0, **TREES).fit(train, split.y)
    version = _log(sqlite_client, model, train[:5])

    assert version.flavor_details["missing"] == -999.0
    loaded = sqlite_client.load_model("xgb")
    assert loaded.model.missing == -999.0
    assert_same(loaded.predict(test), model.predict(test))


def _fair_model() -> tuple[object, pd.DataFrame, list[str]]:
    X, y = fair()
    train = X.iloc[:TRAIN_ROWS]
    categories = sorted(train["occupation"].unique())
    typed = train.assign(occupation=pd.Categorical(train["occupation"], categories=categories))
    model = xgb.XGBClassifier(enable_categorical=True, **TREES).fit(typed, y[:TRAIN_ROWS])
    return model, X, categories


def test_text_column_is_scored_with_the_trained_categories(client: Client) -> None:
    model, X, categories = _fair_model()
    typed = X.iloc[:5].assign(occupation=pd.Categorical(X["occupation"][:5], categories))
    version = _log(client, model, typed, name="fair")
    assert {c.name: c.dtype for c in version.signature.inputs}["occupation"] == "string"
    assert version.flavor_details["categories"] == {"occupation": categories}

    rows = fair_held_out(X)  # text as JSON gives it: str, None for missing, an unseen value
    # XGBoost itself refuses a category it never saw; modelrail sends it down the missing
    # branch, as it does a missing occupation.
    known = rows["occupation"].where(rows["occupation"] != UNSEEN)
    as_trained = rows.assign(occupation=pd.Categorical(known, categories=categories))
    assert_scores_like(client, version, model, rows, as_given=as_trained)
    assert_scores_like(client, version, model, as_trained)  # the user's own dtypes work too


def test_promotion_gates_and_a_batch_run_score_it(sqlite_client: Client, tmp_path: Path) -> None:
    model, X, categories = _fair_model()
    version = _log(sqlite_client, model, X.iloc[:5], name="fair")
    # The tests install XGBoost's CPU-only wheel ("xgboost-cpu", the same module): the
    # runtime gate finds it under the recorded name "xgboost".
    assert_gates_pass(sqlite_client, version, runtime=True)

    rows = fair_held_out(X).dropna().reset_index(drop=True)  # batch sets empty cells aside
    assert UNSEEN in set(rows["occupation"])
    known = rows["occupation"].where(rows["occupation"] != UNSEEN)
    expected = model.predict(rows.assign(occupation=pd.Categorical(known, categories)))
    assert_batch_scores(sqlite_client, "fair", rows, expected, tmp_path)


def test_an_unfitted_model_is_refused_when_logged(sqlite_client: Client) -> None:
    with pytest.raises(ModelFlavorError, match="fit"):
        _log(sqlite_client, xgb.XGBClassifier(), binary().train[:5])


def test_a_missing_xgboost_names_the_extra_to_install(
    sqlite_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = binary()
    _log(sqlite_client, xgb.XGBClassifier(**TREES).fit(split.train, split.y), split.train[:5])
    block_import(monkeypatch, "xgboost")

    with pytest.raises(ModelFlavorError, match=r"pip install 'modelrail\[xgboost\]'"):
        sqlite_client.load_model("xgb")


def test_a_file_xgboost_cannot_read_names_the_versions(sqlite_client: Client) -> None:
    split = binary()
    version = _log(
        sqlite_client, xgb.XGBClassifier(**TREES).fit(split.train, split.y), split.train[:5]
    )
    damaged = stored_file(sqlite_client, version)[:200]
    assert_refused_as_newer(version, damaged, "XGBoost UBJSON")


def test_details_cannot_name_a_class_outside_xgboost(sqlite_client: Client) -> None:
    split = binary()
    version = _log(
        sqlite_client, xgb.XGBClassifier(**TREES).fit(split.train, split.y), split.train[:5]
    )
    edited = {**version.flavor_details, "estimator": "os.system"}

    with pytest.raises(ModelFlavorError, match="not one of the xgboost model classes"):
        loaded_from_bytes(replace(version, flavor_details=edited), b"{}")

"""LightGBM models are saved as LightGBM's own text model and predict exactly as before:
loaded back, and as serving and batch scoring score them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelrail.client import Client
from modelrail.errors import ModelFlavorError
from tests.flavors.tree_data import (
    TRAIN_ROWS,
    as_words,
    assert_batch_scores,
    assert_booster_scores,
    assert_gates_pass,
    assert_refused_as_newer,
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

lgb = pytest.importorskip("lightgbm")

TREES = {"n_estimators": 8, "num_leaves": 7, "min_child_samples": 5, "n_jobs": 1, "verbose": -1}


def _log(client: Client, model: object, example: object, name: str = "lgb") -> object:
    with client.start_run("lightgbm") as run:
        return run.log_model(model, name, input_example=example)


@pytest.mark.parametrize(
    ("data", "labels"),
    [(binary, "numbers"), (multiclass, "numbers"), (binary, "words"), (multiclass, "words")],
    ids=["binary", "multiclass", "binary-words", "multiclass-words"],
)
def test_classifier_is_stored_as_text_and_predicts_its_own_labels(
    client: Client, data, labels: str
) -> None:
    split = data()
    y = as_words(split.y) if labels == "words" else split.y
    model = lgb.LGBMClassifier(**TREES).fit(split.train, y)
    version = _log(client, model, split.train[:5])

    assert_stored_natively(
        client, version, model, file_format="lightgbm-text", magic=b"tree\nversion="
    )
    assert version.signature.classes == tuple(model.classes_.tolist())

    loaded = assert_scores_like(client, version, model, split.test)
    assert type(loaded) is lgb.LGBMClassifier
    assert list(loaded.classes_) == list(model.classes_)


def test_a_prediction_server_answers_both_protocols(sqlite_client: Client) -> None:
    split = multiclass()
    model = lgb.LGBMClassifier(**TREES).fit(split.train, as_words(split.y))
    version = _log(sqlite_client, model, split.train[:5])

    assert_served_over_http(sqlite_client, version, split.test[:8])


def test_regressor_predicts_as_before(client: Client) -> None:
    split = regression()
    model = lgb.LGBMRegressor(**TREES).fit(split.train, split.y)
    version = _log(client, model, split.train[:5])

    assert type(assert_scores_like(client, version, model, split.test)) is lgb.LGBMRegressor


@pytest.mark.parametrize(
    ("objective", "named"),
    [("regression", False), ("binary", True), ("binary", False), ("multiclass", True)],
)
def test_booster_loads_as_a_booster_and_scores_by_its_objective(
    sqlite_client: Client, objective: str, named: bool
) -> None:
    split = multiclass() if objective == "multiclass" else binary()
    train = split.train if named else split.train.to_numpy()
    params = {"objective": objective, "num_leaves": 7, "verbose": -1, "num_threads": 1}
    if objective == "multiclass":
        params["num_class"] = 3
    booster = lgb.train(params, lgb.Dataset(train, label=split.y), num_boost_round=6)
    version = _log(sqlite_client, booster, train[:5])

    test = split.test if named else split.test.to_numpy()
    raw = booster.predict(test)
    expected, probabilities = raw, None
    if objective == "binary":
        expected, probabilities = (raw > 0.5).astype(int), two_columns(raw)
    if objective == "multiclass":
        expected, probabilities = np.argmax(raw, axis=1), raw
    loaded = assert_booster_scores(sqlite_client, version, test, expected, probabilities)
    assert type(loaded) is lgb.Booster


def test_missing_values_take_the_trees_default_branches(client: Client) -> None:
    split = with_missing(binary())
    model = lgb.LGBMClassifier(**TREES).fit(split.train, split.y)
    version = _log(client, model, split.train[:5])
    assert split.test.isna().any(axis=1).mean() > 0.5

    assert_scores_like(client, version, model, split.test)


def _fair_model() -> tuple[object, pd.DataFrame]:
    X, y = fair()
    train = X.iloc[:TRAIN_ROWS].astype({"occupation": "category"})
    labels = np.where(y[:TRAIN_ROWS] == 1, "affair", "none")
    return lgb.LGBMClassifier(**TREES).fit(train, labels), X


def test_text_column_is_scored_with_the_trained_categories(client: Client) -> None:
    model, X = _fair_model()
    version = _log(client, model, X.iloc[:5].astype({"occupation": "category"}), name="fair")
    assert {c.name: c.dtype for c in version.signature.inputs}["occupation"] == "string"
    assert version.flavor_details["categories"] == {
        "occupation": sorted(X["occupation"][:TRAIN_ROWS].unique())
    }

    rows = fair_held_out(X)  # text as JSON gives it: str, None for missing, an unseen value
    # LightGBM itself maps a category it never saw, like a missing one, to "missing".
    as_trained = rows.astype({"occupation": "category"})
    assert_scores_like(client, version, model, rows, as_given=as_trained)
    assert set(client.load_model("fair").predict(rows)) <= {"affair", "none"}
    assert_scores_like(client, version, model, as_trained)  # the user's own dtypes work too


def test_promotion_gates_and_a_batch_run_score_it(sqlite_client: Client, tmp_path: Path) -> None:
    model, X = _fair_model()
    version = _log(sqlite_client, model, X.iloc[:5], name="fair")
    assert_gates_pass(sqlite_client, version, runtime=True)

    rows = fair_held_out(X).dropna().reset_index(drop=True)  # batch sets empty cells aside
    expected = model.predict(rows.astype({"occupation": "category"})).astype(object)
    assert_batch_scores(sqlite_client, "fair", rows, expected, tmp_path)


def test_categories_that_cannot_be_told_apart_are_refused_when_logged(
    sqlite_client: Client,
) -> None:
    model, X = _fair_model()
    train = X.iloc[:TRAIN_ROWS].astype({"occupation": "category"})
    # An ordered categorical is kept with the others but is not a categorical feature.
    ordered = train.assign(rank=pd.Categorical(train["educ"], ordered=True))
    model = lgb.LGBMClassifier(**TREES).fit(ordered, model.predict(train))

    with pytest.raises(ModelFlavorError, match="cannot tell which columns"):
        _log(sqlite_client, model, ordered[:5])


def test_an_unfitted_model_is_refused_when_logged(sqlite_client: Client) -> None:
    with pytest.raises(ModelFlavorError, match="fit"):
        _log(sqlite_client, lgb.LGBMClassifier(), binary().train[:5])


def test_a_missing_lightgbm_names_the_extra_to_install(
    sqlite_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = regression()
    _log(sqlite_client, lgb.LGBMRegressor(**TREES).fit(split.train, split.y), split.train[:5])
    block_import(monkeypatch, "lightgbm")

    with pytest.raises(ModelFlavorError, match=r"pip install 'modelrail\[lightgbm\]'"):
        sqlite_client.load_model("lgb")


@pytest.mark.parametrize("damage", ["cut short", "not a model", "not text"])
def test_a_file_lightgbm_cannot_read_names_the_versions(sqlite_client: Client, damage: str) -> None:
    split = regression()
    version = _log(
        sqlite_client, lgb.LGBMRegressor(**TREES).fit(split.train, split.y), split.train[:5]
    )
    stored = stored_file(sqlite_client, version)
    # A model cut short would make LightGBM abort the process: it is refused before that.
    data = {"cut short": stored[: len(stored) // 2], "not a model": b"{}", "not text": b"\xff"}
    assert_refused_as_newer(version, data[damage], "LightGBM text model")

"""CatBoost models are saved in CatBoost's own cbm format and predict exactly as before:
loaded back, and as serving and batch scoring score them, categorical features included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelrail.client import Client
from modelrail.errors import ModelFlavorError
from tests.flavors.tree_data import (
    TRAIN_ROWS,
    UNSEEN,
    as_words,
    assert_batch_scores,
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
    with_missing,
)

cb = pytest.importorskip("catboost")

TREES = {"iterations": 8, "depth": 3, "thread_count": 1, "verbose": 0}


def _log(client: Client, model: object, example: object, name: str = "cb") -> object:
    with client.start_run("catboost") as run:
        return run.log_model(model, name, input_example=example)


def _fit(cls: type, X: pd.DataFrame, y: np.ndarray, **options: object) -> object:
    # allow_writing_files=False: CatBoost would otherwise write catboost_info/ to the cwd.
    return cls(allow_writing_files=False, **TREES, **options).fit(X, y)


@pytest.mark.parametrize(
    ("data", "words"),
    [(binary, False), (multiclass, False), (binary, True), (multiclass, True)],
    ids=["binary", "multiclass", "binary-words", "multiclass-words"],
)
def test_classifier_is_stored_as_cbm_and_predicts_its_own_labels(
    client: Client, data, words: bool
) -> None:
    split = data()
    y = as_words(split.y) if words else split.y
    model = _fit(cb.CatBoostClassifier, split.train, y)
    version = _log(client, model, split.train[:5])

    assert_stored_natively(client, version, model, file_format="cbm", magic=b"CBM1")
    assert version.signature.classes == tuple(model.classes_.tolist())

    loaded = assert_scores_like(client, version, model, split.test)
    assert type(loaded) is cb.CatBoostClassifier
    assert list(loaded.classes_) == list(model.classes_)
    assert client.load_model("cb").predict(split.test).ndim == 1  # CatBoost gives (n, 1)


def test_a_prediction_server_answers_both_protocols(sqlite_client: Client) -> None:
    split = regression()
    model = _fit(cb.CatBoostRegressor, split.train, split.y)
    version = _log(sqlite_client, model, split.train[:5])

    assert_served_over_http(sqlite_client, version, split.test[:8])


def test_regressor_predicts_as_before(client: Client) -> None:
    split = regression()
    model = _fit(cb.CatBoostRegressor, split.train, split.y)
    version = _log(client, model, split.train[:5])

    assert type(assert_scores_like(client, version, model, split.test)) is cb.CatBoostRegressor


def test_missing_values_are_scored_as_catboost_scores_them(client: Client) -> None:
    split = with_missing(binary())
    model = _fit(cb.CatBoostClassifier, split.train, split.y)
    version = _log(client, model, split.train[:5])
    assert split.test.isna().any(axis=1).mean() > 0.5

    assert_scores_like(client, version, model, split.test)


def _fair_model() -> tuple[object, pd.DataFrame]:
    X, y = fair()
    labels = np.where(y[:TRAIN_ROWS] == 1, "affair", "none")
    model = _fit(cb.CatBoostClassifier, X.iloc[:TRAIN_ROWS], labels, cat_features=["occupation"])
    return model, X


def test_text_categories_unseen_and_missing_ones_included(client: Client) -> None:
    model, X = _fair_model()
    version = _log(client, model, X.iloc[:5], name="fair")
    assert {c.name: c.dtype for c in version.signature.inputs}["occupation"] == "string"
    assert version.flavor_details["cat_features"] == ["occupation"]

    rows = fair_held_out(X)  # text as JSON gives it: str, None for missing, an unseen value
    assert UNSEEN in set(rows["occupation"])  # CatBoost scores it from its priors
    # CatBoost refuses a missing category and asks for it as text: it gets str(nan).
    as_catboost_asks = rows.assign(occupation=rows["occupation"].fillna("nan"))
    assert_scores_like(client, version, model, rows, as_given=as_catboost_asks)
    assert set(client.load_model("fair").predict(rows)) <= {"affair", "none"}


def test_integer_categories_survive_a_float_matrix(client: Client) -> None:
    X, y = fair()
    X = X.assign(occupation=X["occupation"].str.removeprefix("occ").astype(np.int64))
    model = _fit(cb.CatBoostClassifier, X.iloc[:TRAIN_ROWS], y[:TRAIN_ROWS], cat_features=[6])
    version = _log(client, model, X.iloc[:5], name="fair")
    assert {c.name: c.dtype for c in version.signature.inputs}["occupation"] == "int64"

    # All-numeric: serving and batch hand the model float64 (3.0), which CatBoost refuses
    # for a categorical feature; the predictor gives it the category "3" again.
    rows = X.iloc[TRAIN_ROWS : TRAIN_ROWS + 60].reset_index(drop=True)
    assert_scores_like(client, version, model, rows)


@pytest.mark.parametrize(
    "engine",
    # Spark starts a JVM (seconds); its executors load the model from the same bytes.
    ["local", pytest.param("spark", marks=pytest.mark.slow)],
)
def test_promotion_gates_and_a_batch_run_score_it(
    sqlite_client: Client, tmp_path: Path, engine: str
) -> None:
    if engine == "spark":
        pytest.importorskip("pyspark")
    model, X = _fair_model()
    version = _log(sqlite_client, model, X.iloc[:5], name="fair")
    assert_gates_pass(sqlite_client, version, runtime=True)

    rows = fair_held_out(X).dropna().reset_index(drop=True)  # batch sets empty cells aside
    expected = model.predict(rows).astype(object)
    assert_batch_scores(sqlite_client, "fair", rows, expected, tmp_path, engine=engine)


def test_an_unfitted_model_is_refused_when_logged(sqlite_client: Client) -> None:
    with pytest.raises(ModelFlavorError, match="fit"):
        _log(sqlite_client, cb.CatBoostClassifier(), binary().train[:5])


def test_a_missing_catboost_names_the_extra_to_install(
    sqlite_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = regression()
    _log(sqlite_client, _fit(cb.CatBoostRegressor, split.train, split.y), split.train[:5])
    block_import(monkeypatch, "catboost")

    with pytest.raises(ModelFlavorError, match=r"pip install 'modelrail\[catboost\]'"):
        sqlite_client.load_model("cb")


def test_a_file_catboost_cannot_read_names_the_versions(sqlite_client: Client) -> None:
    split = regression()
    version = _log(sqlite_client, _fit(cb.CatBoostRegressor, split.train, split.y), split.train[:5])
    stored = stored_file(sqlite_client, version)
    assert_refused_as_newer(version, stored[: len(stored) // 2], "CatBoost cbm")

"""XGBoost models are saved in XGBoost's own UBJSON format and predict exactly as before:
loaded back, and as serving and batch scoring score them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelrail.batch.runner import run_batch
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.errors import ModelFlavorError
from modelrail.registry import loaded_from_bytes
from tests.flavors.tree_data import (
    TRAIN_ROWS,
    UNSEEN,
    assert_not_pickle,
    assert_same,
    binary,
    block_import,
    fair,
    fair_held_out,
    multiclass,
    regression,
    served,
    stored_file,
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

    assert version.flavor == "xgboost"
    details = version.flavor_details
    assert details["format"] == "ubj"
    assert details["estimator"] == "xgboost.sklearn.XGBClassifier"
    assert details["packages"]["xgboost"] == xgb.__version__
    assert details["unsafe"] is False
    stored = stored_file(client, version)
    assert_not_pickle(stored)
    assert stored[:1] == b"{"  # a UBJSON object
    assert version.signature.classes == tuple(range(len(np.unique(split.y))))

    loaded = client.load_model("xgb")
    assert type(loaded.model) is xgb.XGBClassifier
    assert_same(loaded.predict(split.test), model.predict(split.test))
    assert_same(loaded.predict_proba(split.test), model.predict_proba(split.test))
    scored = served(client, version, split.test)
    assert_same(scored.predictions, model.predict(split.test))
    assert scored.probabilities is not None
    assert scored.probabilities.dtype == np.float64 and scored.probabilities.flags.c_contiguous
    assert_same(scored.probabilities, model.predict_proba(split.test))


def test_regressor_predicts_as_before(client: Client) -> None:
    split = regression()
    model = xgb.XGBRegressor(**TREES).fit(split.train, split.y)
    version = _log(client, model, split.train[:5])

    loaded = client.load_model("xgb")
    assert type(loaded.model) is xgb.XGBRegressor
    assert loaded.predict_proba(split.test) is None
    assert_same(loaded.predict(split.test), model.predict(split.test))
    assert_same(served(client, version, split.test).predictions, model.predict(split.test))


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

    loaded = sqlite_client.load_model("xgb")
    assert type(loaded.model) is xgb.Booster
    test = split.test if named else split.test.to_numpy()
    raw = booster.predict(xgb.DMatrix(test))
    margin = booster.predict(xgb.DMatrix(test), output_margin=True)
    expected = {
        "reg:squarederror": raw,
        "binary:logistic": (raw > 0.5).astype(int),
        "binary:logitraw": (margin > 0).astype(int),
        "multi:softprob": np.argmax(raw, axis=1) if raw.ndim == 2 else raw,
        "multi:softmax": raw.astype(int),
    }[objective]
    assert_same(loaded.predict(test), expected)
    frame = pd.DataFrame(test, columns=[c.name for c in version.signature.inputs])
    assert_same(served(sqlite_client, version, frame).predictions, expected)
    if objective == "binary:logistic":
        assert_same(loaded.predict_proba(test)[:, 1], raw)
    if objective == "multi:softprob":
        assert_same(loaded.predict_proba(test), raw)
    if objective.startswith(("binary", "multi")):
        probabilities = loaded.predict_proba(test)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
        assert version.signature.has_probabilities


def test_missing_values_take_the_trees_default_branches(client: Client) -> None:
    split = with_missing(binary())
    model = xgb.XGBClassifier(**TREES).fit(split.train, split.y)
    version = _log(client, model, split.train[:5])
    assert split.test.isna().any(axis=1).mean() > 0.5

    loaded = client.load_model("xgb")
    assert_same(loaded.predict_proba(split.test), model.predict_proba(split.test))
    scored = served(client, version, split.test)
    assert_same(scored.predictions, model.predict(split.test))
    assert_same(scored.probabilities, model.predict_proba(split.test))


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
    expected_input = rows.assign(occupation=pd.Categorical(known, categories=categories))
    expected = model.predict_proba(expected_input)

    loaded = client.load_model("fair")
    assert_same(loaded.predict_proba(rows), expected)
    assert_same(loaded.predict(rows), model.predict(expected_input))
    assert_same(loaded.predict_proba(expected_input), expected)  # the user's own dtypes
    scored = served(client, version, rows)
    assert_same(scored.probabilities, expected)
    assert_same(scored.predictions, model.predict(expected_input))


def test_batch_scoring_reads_text_from_parquet(
    sqlite_client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, X, categories = _fair_model()
    _log(sqlite_client, model, X.iloc[:5], name="fair")
    rows = fair_held_out(X).dropna().reset_index(drop=True)  # batch sets empty cells aside
    assert UNSEEN in set(rows["occupation"])
    source = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pandas(rows.assign(id=np.arange(len(rows)))), source)
    monkeypatch.chdir(tmp_path)

    spec = JobSpec(reference="fair", output="scores", id_columns=("id",), inputs=(str(source),))
    record = run_batch(sqlite_client, spec)

    assert record.status == "succeeded", record.error
    written = pq.read_table(tmp_path / "scores").to_pandas().sort_values("id")
    known = rows["occupation"].where(rows["occupation"] != UNSEEN)
    expected = model.predict(rows.assign(occupation=pd.Categorical(known, categories)))
    assert_same(written["prediction"].to_numpy(), expected)


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
    packages = {**version.flavor_details["packages"], "xgboost": "99.0.0"}
    newer = replace(version, flavor_details={**version.flavor_details, "packages": packages})

    with pytest.raises(ModelFlavorError) as refused:
        loaded_from_bytes(newer, damaged)
    message = str(refused.value)
    assert "xgboost.sklearn.XGBClassifier" in message
    assert f"saved by xgboost 99.0.0, newer than the xgboost {xgb.__version__}" in message
    assert "pip install 'xgboost>=99.0.0'" in message

    with pytest.raises(ModelFlavorError, match="may be damaged"):
        loaded_from_bytes(version, damaged)


def test_details_cannot_name_a_class_outside_xgboost(sqlite_client: Client) -> None:
    split = binary()
    version = _log(
        sqlite_client, xgb.XGBClassifier(**TREES).fit(split.train, split.y), split.train[:5]
    )
    edited = {**version.flavor_details, "estimator": "os.system"}

    with pytest.raises(ModelFlavorError, match="not one of the xgboost model classes"):
        loaded_from_bytes(replace(version, flavor_details=edited), b"{}")

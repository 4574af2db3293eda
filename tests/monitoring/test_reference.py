"""A version registered by a run keeps a reference profile: the profiles of the data the run
logged and the distribution of its predictions on the test data, on SQLite and PostgreSQL.
A model that cannot predict that data is registered all the same, and a version registered
without data has no profile."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import ConflictError, ModelVersionNotFoundError
from modelrail.monitoring.dataset_profiles import fingerprint_and_profile
from modelrail.monitoring.profiles import ReferenceProfile
from modelrail.tracking.run import PROFILES

FEATURES = ["tenure", "spend"]


# Named apart from tests/monitoring/conftest.py's ``client`` (a project of the monitor tests).
@pytest.fixture
def registry(store_url: str, tmp_path: Path) -> Iterator[Client]:
    """A fresh store: SQLite, then PostgreSQL (``store_url`` is parametrized)."""
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(store_url=store_url, settings=settings, user="tester") as made:
        yield made


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Client]:
    """A fresh project on SQLite."""
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings, user="tester") as made:
        yield made


def _customers(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, rows).astype(float),
            "spend": rng.normal(60.0, 15.0, rows),
            "plan": rng.choice(["basic", "pro", None], rows),
        }
    )
    frame["churned"] = (frame["tenure"] < 20).astype(int)
    return frame


def _fitted() -> tuple[LogisticRegression, pd.DataFrame, pd.DataFrame]:
    train, test = _customers(600, seed=1), _customers(250, seed=2)
    return LogisticRegression().fit(train[FEATURES], train["churned"]), train, test


def test_registration_keeps_the_runs_profiles_and_its_predictions_on_the_test_data(
    registry: Client,
) -> None:
    model, train, test = _fitted()
    with registry.start_run("churn") as run:
        run.log_dataset(train, role="train", name="customers")
        run.log_dataset(test, role="test", name="customers")
        version = run.log_model(model, name="churn", input_example=train[FEATURES].head())

    reference = registry.reference_profile("churn:1")
    assert reference is not None
    assert (
        registry.reference_profile("churn@dev") == reference == registry.reference_profile("churn")
    )
    assert (reference.train_label, reference.test_label) == ("train 1.0", "test 1.0")
    assert reference.prediction_data == "test" and reference.notes == ()
    assert reference.train == fingerprint_and_profile(train).profile
    assert reference.test == fingerprint_and_profile(test).profile
    assert reference.train is not None and reference.train.columns["plan"].missing > 0

    # The label columns and a column the model does not use are no obstacle.
    prediction = reference.prediction
    assert prediction is not None and prediction.kind == "categorical"
    expected = pd.Series(model.predict(test[FEATURES])).astype(str).value_counts(normalize=True)
    assert prediction.frequencies == pytest.approx(expected.to_dict(), abs=1e-6)
    assert prediction.count == len(test)

    # The profiles are stored with the run too, as content-addressed artifacts.
    stored = json.loads(registry.run_artifact(run.id, f"{PROFILES}/train.json"))
    assert stored == reference.train.to_json()
    assert version.reference == "churn:1"


def test_a_regressor_gets_a_numeric_prediction_distribution(registry: Client) -> None:
    train, test = _customers(400, seed=3), _customers(150, seed=4)
    model = LinearRegression().fit(train[FEATURES], train["spend"] * 2)
    with registry.start_run("spend") as run:
        run.log_dataset(train, role="train")
        run.log_dataset(test, role="test")
        run.log_model(model, name="spend", input_example=train[FEATURES].head())
    reference = registry.reference_profile("spend:1")
    assert reference is not None and reference.prediction is not None
    predicted = model.predict(test[FEATURES])
    assert reference.prediction.kind == "numeric"
    assert reference.prediction.mean == pytest.approx(predicted.mean(), rel=1e-5)
    assert reference.prediction.max == pytest.approx(predicted.max(), rel=1e-5)


def test_test_data_in_a_file_is_streamed_and_predicted_like_the_frame(
    local: Client, tmp_path: Path
) -> None:
    model, train, test = _fitted()
    test.to_csv(tmp_path / "test.csv", index=False)
    test.to_parquet(tmp_path / "test.parquet")
    profiles = {}
    given = {"frame": test, "csv": tmp_path / "test.csv", "pq": str(tmp_path / "test.parquet")}
    for name, data in given.items():
        with local.start_run("files") as run:
            run.log_dataset(train, role="train")
            run.log_dataset(data, role="test")
            version = run.log_model(model, name=f"m-{name}", input_example=train[FEATURES][:3])
        profiles[name] = local.reference_profile(version.reference)
    frame, csv, parquet = profiles["frame"], profiles["csv"], profiles["pq"]
    assert frame is not None and csv is not None and parquet is not None
    assert frame.prediction == csv.prediction == parquet.prediction
    assert frame.test == parquet.test


def test_a_table_and_an_array_are_predicted_too(local: Client) -> None:
    model, train, test = _fitted()
    matrix_model = LogisticRegression().fit(train[FEATURES].to_numpy(), train["churned"])
    cases = (
        ("table", model, pa.Table.from_pandas(test), train[FEATURES].head()),
        ("array", matrix_model, test[FEATURES].to_numpy(), train[FEATURES].to_numpy()[:3]),
    )
    for name, fitted, data, example in cases:
        with local.start_run("kinds") as run:
            run.log_dataset(data, role="test")
            run.log_model(fitted, name=name, input_example=example)
        reference = local.reference_profile(name)
        assert reference is not None and reference.prediction is not None, name
        assert reference.prediction.count == len(test)
        assert reference.train is None and reference.prediction_data == "test"


def test_without_test_data_the_validation_then_the_train_data_is_predicted(
    local: Client,
) -> None:
    model, train, test = _fitted()
    with local.start_run("roles") as run:
        run.log_dataset(train, role="train")
        run.log_dataset(test, role="validation")
        run.log_model(model, name="validated", input_example=train[FEATURES].head())
    with local.start_run("roles") as run:
        run.log_dataset(train, role="train")
        run.log_model(model, name="trained", input_example=train[FEATURES].head())
    validated = local.reference_profile("validated")
    trained = local.reference_profile("trained")
    assert validated is not None and trained is not None
    assert (validated.prediction_data, validated.test) == ("validation", None)
    assert validated.prediction is not None and validated.prediction.count == len(test)
    assert trained.prediction_data == "train"
    assert trained.prediction is not None and trained.prediction.count == len(train)


def test_a_model_that_cannot_predict_the_test_data_is_registered_all_the_same(
    registry: Client, caplog: pytest.LogCaptureFixture
) -> None:
    model, train, test = _fitted()
    with registry.start_run("broken") as run:
        run.log_dataset(train, role="train")
        run.log_dataset(test.drop(columns=["spend"]), role="test")
        with caplog.at_level(logging.WARNING, logger="modelrail"):
            version = run.log_model(model, name="broken", input_example=train[FEATURES].head())
    assert registry.get_model_version("broken:1") == version
    assert "without its prediction distribution" in caplog.text
    reference = registry.reference_profile("broken:1")
    assert reference is not None and reference.prediction is None
    assert reference.train is not None and reference.test is not None  # what is known is kept
    (note,) = reference.notes
    assert "predicting the test data failed" in note and "'spend'" in note

    # A model that raises on the values themselves (a missing value it cannot take) too.
    holes = test.copy()
    holes.loc[3, "tenure"] = np.nan
    with registry.start_run("holes") as run:
        run.log_dataset(holes, role="test")
        run.log_model(model, name="holes", input_example=train[FEATURES].head())
    reference = registry.reference_profile("holes")
    assert reference is not None and reference.prediction is None
    assert "NaN" in reference.notes[0]


def test_versions_without_logged_data_have_no_profile(registry: Client) -> None:
    model, train, _ = _fitted()
    registry.register_model(model, "outside", input_example=train[FEATURES].head())
    with registry.start_run("no-data") as run:
        run.log_model(model, name="no-data", input_example=train[FEATURES].head())
    assert registry.reference_profile("outside:1") is None
    assert registry.reference_profile("no-data") is None
    with pytest.raises(ModelVersionNotFoundError):
        registry.reference_profile("outside:2")


def test_a_profile_is_written_once(registry: Client) -> None:
    model, train, test = _fitted()
    with registry.start_run("once") as run:
        run.log_dataset(test, role="test")
        run.log_model(model, name="once", input_example=train[FEATURES].head())
    kept = registry.reference_profile("once")
    assert kept is not None
    registry.record_reference_profile("once:1", kept)  # the same again (a retry): nothing changes
    other = ReferenceProfile(None, None, None, notes=("forged",))
    with pytest.raises(ConflictError, match="already has a reference profile"):
        registry.record_reference_profile("once:1", other)
    assert registry.reference_profile("once:1") == kept

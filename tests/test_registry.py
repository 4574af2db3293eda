"""Registering numbered model versions and loading them back, verified."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import modelrail
from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.errors import (
    ArtifactIntegrityError,
    ConfigError,
    InvalidInputError,
    InvalidReferenceError,
    ModelFlavorError,
    ModelNotFoundError,
    ModelRoundTripError,
    ModelVersionNotFoundError,
)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def _fit(data: tuple[pd.DataFrame, pd.Series]) -> object:
    X, y = data
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


class MeanModel:
    """A plain object with predict(): saved by the joblib fallback."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, X: object) -> np.ndarray:
        return np.full(len(X), self.value)  # type: ignore[arg-type]


def test_versions_are_numbered_and_linked_to_their_run(
    client: Client, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = data
    model = _fit(data)
    versions = []
    for _ in range(3):
        with client.start_run("cancer") as run:
            versions.append(run.log_model(model, "cancer-classifier", input_example=X[:5]))
    assert [v.version for v in versions] == [1, 2, 3]
    assert versions[0].run_id != versions[1].run_id
    assert client.get_run(versions[2].run_id or "").model_versions[0].version == 3
    listed = client.list_models()
    assert [(m.name, m.latest_version, m.version_count) for m in listed] == [
        ("cancer-classifier", 3, 3)
    ]


def test_signature_is_inferred_from_the_input_example(
    client: Client, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = data
    with client.start_run("cancer") as run:
        version = run.log_model(_fit(data), "cancer-classifier", input_example=X[:5])
    names = [c.name for c in version.signature.inputs]
    assert names == list(X.columns)
    assert {c.dtype for c in version.signature.inputs} == {"float64"}
    assert version.signature.has_probabilities
    assert version.signature.classes == (0, 1)
    assert version.flavor == "sklearn"
    assert version.flavor_details["format"] == "skops"
    assert len(version.input_example["data"]) == 5


def test_loaded_model_predicts_like_the_original(
    client: Client, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = data
    model = _fit(data)
    with client.start_run("cancer") as run:
        run.log_model(model, "cancer-classifier", input_example=X[:5])
    loaded = client.load_model("cancer-classifier:1")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))  # type: ignore[attr-defined]
    proba = loaded.predict_proba(X[list(reversed(X.columns))])  # column order does not matter
    np.testing.assert_allclose(proba, model.predict_proba(X))  # type: ignore[attr-defined]
    assert client.load_model("cancer-classifier").version.version == 1


def test_top_level_load_model_uses_the_project_around_the_working_directory(
    project: object, monkeypatch: pytest.MonkeyPatch, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    monkeypatch.chdir(str(project))
    for name in ("MODELRAIL_STORE", "MODELRAIL_ARTIFACTS", "MODELRAIL_HOME"):
        monkeypatch.delenv(name, raising=False)
    X, _ = data
    with modelrail.start_run(experiment="cancer") as run:
        run.log_model(_fit(data), "cancer-classifier", input_example=X[:5])
    assert modelrail.load_model("cancer-classifier:1").predict(X[:3]).shape == (3,)


def test_changed_artifact_is_refused_naming_the_file(
    client: Client, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = data
    with client.start_run("cancer") as run:
        version = run.log_model(_fit(data), "cancer-classifier", input_example=X[:5])
    path = client.artifacts.path_for(version.artifact_sha256)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactIntegrityError, match=str(path)) as caught:
        client.load_model("cancer-classifier:1")
    assert "changed" in str(caught.value)


def test_truncated_artifact_is_refused(
    client: Client, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = data
    with client.start_run("cancer") as run:
        version = run.log_model(_fit(data), "cancer-classifier", input_example=X[:5])
    path = client.artifacts.path_for(version.artifact_sha256)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactIntegrityError, match="truncated"):
        client.load_model("cancer-classifier:1")


def test_missing_artifact_is_refused(client: Client, data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, _ = data
    with client.start_run("cancer") as run:
        version = run.log_model(_fit(data), "cancer-classifier", input_example=X[:5])
    client.artifacts.path_for(version.artifact_sha256).unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        client.load_model("cancer-classifier:1")


def test_other_objects_are_refused_unless_pickle_is_allowed(client: Client) -> None:
    with client.start_run("cancer") as run:
        with pytest.raises(ModelFlavorError, match="allow_pickle=True") as refused:
            run.log_model(MeanModel(0.25), "mean", input_example=np.zeros((2, 3)))
        assert "MeanModel" in refused.value.message
        assert client.list_models() == []
        version = run.log_model(
            MeanModel(0.25), "mean", input_example=np.zeros((2, 3)), allow_pickle=True
        )
    assert version.flavor == "joblib" and version.flavor_details["unsafe"] is True
    assert [c.name for c in version.signature.inputs] == ["0", "1", "2"]
    assert client.load_model("mean:1").predict(np.zeros((4, 3))).tolist() == [0.25] * 4


def test_object_without_predict_is_refused(client: Client) -> None:
    with client.start_run("cancer") as run, pytest.raises(ModelFlavorError, match="predict"):
        run.log_model(object(), "nothing", input_example=np.zeros((1, 1)))
    assert client.list_models() == []


def test_model_without_input_example_is_refused_before_anything_is_stored(
    client: Client, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    with client.start_run("cancer") as run, pytest.raises(InvalidInputError, match="input_example"):
        run.log_model(_fit(data), "cancer-classifier")
    assert client.list_models() == []


def test_references_to_missing_models_and_versions_are_clear(
    client: Client, data: tuple[pd.DataFrame, pd.Series]
) -> None:
    X, _ = data
    with pytest.raises(ModelNotFoundError, match="'ghost'"):
        client.load_model("ghost")
    with client.start_run("cancer") as run:
        run.log_model(_fit(data), "cancer-classifier", input_example=X[:5])
    with pytest.raises(ModelVersionNotFoundError, match="no version 9"):
        client.load_model("cancer-classifier:9")
    with pytest.raises(InvalidReferenceError, match="cancer-classifier:x"):
        client.load_model("cancer-classifier:x")


def test_the_project_can_allow_pickle_and_a_model_can_still_refuse_it(project: Path) -> None:
    (project / "modelrail.toml").write_text("[models]\nallow_pickle = true\n", encoding="utf-8")
    settings = load_settings(cwd=project, environ={}, create=False)
    with Client(settings=settings, user="tester") as client:
        version = client.register_model(MeanModel(1.0), "mean", input_example=np.zeros((2, 3)))
        assert version.flavor == "joblib" and version.flavor_details["unsafe"] is True
        with pytest.raises(ModelFlavorError, match="allow_pickle"):
            client.register_model(
                MeanModel(1.0), "mean", input_example=np.zeros((2, 3)), allow_pickle=False
            )
    off = load_settings(cwd=project, environ={"MODELRAIL_ALLOW_PICKLE": "0"}, create=False)
    assert not off.allow_pickle
    (project / "modelrail.toml").write_text('[models]\nallow_pickle = "yes"\n', encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"modelrail.toml:2: \[models\] allow_pickle must be true"
    ):
        load_settings(cwd=project, environ={}, create=False)


def test_a_model_skops_cannot_load_back_is_refused_or_pickled_when_allowed(client: Client) -> None:
    # skops writes an imputer whose missing_values is pd.NA but cannot read it back: such a
    # version could never be loaded, served or promoted, so it must not be registered.
    from sklearn.impute import SimpleImputer

    X = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0] * 25, "b": [0.5, 1.5, 2.5, 3.5] * 25})
    y = [0, 1, 0, 1] * 25
    model = make_pipeline(SimpleImputer(missing_values=pd.NA), LogisticRegression())
    model.fit(X.astype("Float64"), y)
    with pytest.raises(ModelRoundTripError, match=r"cannot load it back.*allow_pickle=True"):
        client.register_model(model, "imputed", input_example=X[:5])
    assert client.list_models() == []
    version = client.register_model(model, "imputed", input_example=X[:5], allow_pickle=True)
    assert version.flavor == "joblib" and version.flavor_details["unsafe"] is True
    loaded = client.load_model("imputed:1")
    assert loaded.predict(X).tolist() == model.predict(X).tolist()

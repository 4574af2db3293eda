"""ONNX models, from a .onnx file or an onnx.ModelProto: stored as given, run with ONNX Runtime
by load_model and by what serving and batch scoring use, with the same predictions as the
model run directly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelrail.client import Client
from modelrail.entities import ModelVersion
from modelrail.errors import InvalidRequestError, ModelFlavorError
from modelrail.flavors.onnx import OnnxFlavor
from modelrail.scoring.predictor import scoring_model_for


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:400], y.iloc[:400], X.iloc[400:]


@pytest.fixture(scope="module")
def logistic(cancer: tuple[pd.DataFrame, pd.Series, pd.DataFrame]) -> onnx.ModelProto:
    X, y, _ = cancer
    model: onnx.ModelProto = to_onnx(
        LogisticRegression(max_iter=5000).fit(X, y), X[:1].to_numpy(np.float32)
    )
    return model


def _register(client: Client, model: onnx.ModelProto, cancer: Any) -> tuple[Any, ModelVersion]:
    test = cancer[2]
    return test, client.register_model(model, "cancer", input_example=test.head(3))


def _direct(model: onnx.ModelProto, feeds: dict[str, Any]) -> list[Any]:
    """The model run straight through ONNX Runtime, as its author would."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def _binary(positive: Any) -> np.ndarray:
    """A binary model's probabilities as every path gives them: 1 - p, p in float64 (batch
    tables keep p only; ONNX Runtime's own float32 1 - p differs in the 8th digit)."""
    p = np.asarray(positive, dtype=np.float64)
    return np.column_stack([1.0 - p, p])


def _stored(client: Client, version: ModelVersion) -> bytes:
    return client.artifacts.read_verified(
        version.artifact_sha256, size=version.artifact_size, label=version.reference
    )


def test_logistic_regression_from_a_onnx_file_predicts_like_onnx_runtime(
    client: Client, cancer: tuple[pd.DataFrame, pd.Series, pd.DataFrame], tmp_path: Path
) -> None:
    X, y, test = cancer
    fitted = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    model = to_onnx(fitted, X[:1].to_numpy(np.float32))  # ZipMap: probabilities as dicts
    path = tmp_path / "cancer.onnx"
    onnx.save_model(model, path)
    with client.start_run("cancer") as run:
        version = run.log_model(str(path), "cancer", input_example=test.head(5))
    assert version.flavor == "onnx"
    details = version.flavor_details
    assert details["format"] == "onnx" and details["unsafe"] is False
    assert details["classes"] == [0, 1] and set(details["packages"]) == {"onnxruntime", "numpy"}
    assert _stored(client, version) == path.read_bytes()  # the model's own bytes, not a pickle
    assert version.signature.classes == (0, 1) and version.signature.has_probabilities

    labels, dicts = _direct(model, {"X": test.to_numpy(np.float32)})
    expected = _binary([row[1] for row in dicts])
    np.testing.assert_allclose(expected[:, 0], [row[0] for row in dicts], atol=1e-7)
    loaded = client.load_model("cancer:1")
    np.testing.assert_array_equal(loaded.predict(test), labels)
    np.testing.assert_array_equal(loaded.predict_proba(test), expected)
    np.testing.assert_allclose(expected, fitted.predict_proba(test), atol=1e-5)

    scored = scoring_model_for(client.artifacts, version).score(test.to_numpy(np.float64))
    np.testing.assert_array_equal(scored.predictions, labels)
    assert scored.probabilities is not None and scored.probabilities.flags.c_contiguous
    np.testing.assert_array_equal(scored.probabilities, expected)


@pytest.mark.parametrize("zipmap", [False, True], ids=["tensor", "zipmap"])
def test_random_forest_from_a_model_proto_scores_like_onnx_runtime(
    sqlite_client: Client, cancer: tuple[pd.DataFrame, pd.Series, pd.DataFrame], zipmap: bool
) -> None:
    X, y, test = cancer
    forest = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(X, y)
    model = to_onnx(forest, X[:1].to_numpy(np.float32), options={"zipmap": zipmap})
    version = sqlite_client.register_model(model, "forest", input_example=test.head(5))
    assert version.flavor == "onnx" and version.signature.classes == (0, 1)

    labels, probabilities = _direct(model, {"X": test.to_numpy(np.float32)})
    if zipmap:
        probabilities = [[row[0], row[1]] for row in probabilities]
    expected = _binary(np.asarray(probabilities)[:, 1])
    loaded = sqlite_client.load_model("forest:1")
    np.testing.assert_array_equal(loaded.predict(test), labels)
    np.testing.assert_array_equal(loaded.predict_proba(test), expected)
    scored = scoring_model_for(sqlite_client.artifacts, version).score(test.to_numpy())
    np.testing.assert_array_equal(scored.predictions, forest.predict(test))
    assert scored.probabilities is not None
    np.testing.assert_allclose(scored.probabilities, forest.predict_proba(test), atol=1e-5)


def test_regressor_predicts_its_output_as_float64(sqlite_client: Client) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    forest = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(X, y)
    model = to_onnx(forest, X[:1].to_numpy(np.float32))
    version = sqlite_client.register_model(model, "diabetes", input_example=X.head(5))
    assert not version.signature.has_probabilities and version.signature.classes == ()
    (expected,) = _direct(model, {"X": X.to_numpy(np.float32)})
    predictions = sqlite_client.load_model("diabetes:1").predict(X)
    assert predictions.dtype == np.float64 and predictions.shape == (len(X),)
    np.testing.assert_array_equal(predictions, expected.reshape(-1))
    scored = scoring_model_for(sqlite_client.artifacts, version).score(X.to_numpy())
    np.testing.assert_allclose(scored.predictions, forest.predict(X), rtol=1e-5)
    assert scored.probabilities is None


def test_one_input_per_column_takes_text_columns_by_name(sqlite_client: Client) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], 300).astype(object),
            "size": rng.normal(size=300),
        }
    )
    target = np.where((frame["colour"] == "red") ^ (frame["size"] > 0.5), "yes", "no")
    fitted = make_pipeline(
        ColumnTransformer(
            [("colour", OneHotEncoder(), ["colour"]), ("size", "passthrough", ["size"])]
        ),
        LogisticRegression(),
    ).fit(frame, target)
    initial = [("colour", StringTensorType([None, 1])), ("size", FloatTensorType([None, 1]))]
    model = to_onnx(fitted, initial_types=initial, options={"zipmap": False})
    version = sqlite_client.register_model(model, "colours", input_example=frame.head(5))
    assert [c.dtype for c in version.signature.inputs] == ["string", "float64"]
    assert version.signature.classes == ("no", "yes")

    reordered = frame[["size", "colour"]]  # columns go by name
    loaded = sqlite_client.load_model("colours:1")
    np.testing.assert_array_equal(loaded.predict(reordered), fitted.predict(frame))
    scoring = scoring_model_for(sqlite_client.artifacts, version)
    scored = scoring.score_frame(frame)
    assert scored.probabilities is not None
    np.testing.assert_allclose(scored.probabilities, fitted.predict_proba(frame), atol=1e-5)
    missing = frame.head(3).copy()
    missing.loc[1, "colour"] = None
    with pytest.raises(InvalidRequestError, match="'colour' has a missing value") as refused:
        scoring.score_frame(missing)
    assert refused.value.field == "colour"


def test_predict_then_predict_proba_runs_the_model_once(
    sqlite_client: Client, cancer: Any, logistic: onnx.ModelProto
) -> None:
    test, version = _register(sqlite_client, logistic, cancer)
    scoring = scoring_model_for(sqlite_client.artifacts, version)
    predictor = scoring.loaded.predictor  # type: ignore[union-attr]
    calls = []
    real_run = predictor.session.run

    def counting_run(names: Any, feeds: Any) -> Any:
        calls.append(len(next(iter(feeds.values()))))
        return real_run(names, feeds)

    predictor.session = type("Counting", (), {"run": staticmethod(counting_run)})()
    first = scoring.score(test.to_numpy())
    second = scoring.score(test.to_numpy()[::-1].copy())
    assert calls == [len(test), len(test)]
    np.testing.assert_array_equal(second.probabilities, first.probabilities[::-1])  # type: ignore[index]


def test_rows_with_nan_probabilities_are_unscorable(
    sqlite_client: Client, cancer: Any, logistic: onnx.ModelProto
) -> None:
    test, version = _register(sqlite_client, logistic, cancer)
    rows = test.head(3).to_numpy().copy()
    rows[2, 0] = np.nan
    labels, _ = _direct(logistic, {"X": rows.astype(np.float32)})
    np.testing.assert_array_equal(sqlite_client.load_model("cancer:1").predict(rows), labels)
    scored = scoring_model_for(sqlite_client.artifacts, version).score(rows)
    unscorable = scored.nonfinite_rows()
    assert unscorable is not None and unscorable.tolist() == [False, False, True]


def _identity_model(opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])],
        "identity",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_model_this_onnx_runtime_cannot_run_is_refused_naming_versions(
    client: Client, tmp_path: Path
) -> None:
    newer = _identity_model(opset=99)
    with pytest.raises(ModelFlavorError, match=r"onnxruntime \S+ cannot run .*ai\.onnx 99"):
        client.register_model(newer, "future", input_example=np.zeros((1, 2)))
    assert client.list_models() == []
    details = {"format": "onnx", "estimator": "onnx:identity", "opsets": {"ai.onnx": 99}}
    details["packages"] = {"onnxruntime": "9.0.0"}
    with pytest.raises(
        ModelFlavorError, match=r"(?s)checked with onnxruntime 9\.0\.0.*pip install -U"
    ):
        OnnxFlavor().load(newer.SerializeToString(), details)


def test_external_data_and_other_objects_are_refused(sqlite_client: Client, tmp_path: Path) -> None:
    model = _identity_model(opset=13)
    raw = np.array([1.0, 2.0], dtype=np.float32).tobytes()
    weights = helper.make_tensor("W", TensorProto.FLOAT, [2], raw, raw=True)
    model.graph.initializer.append(weights)
    path = tmp_path / "external.onnx"
    onnx.save_model(model, path, save_as_external_data=True, size_threshold=0)
    with pytest.raises(ModelFlavorError, match="external data"):
        sqlite_client.register_model(str(path), "external", input_example=np.zeros((1, 2)))
    with pytest.raises(ModelFlavorError, match="cannot read the ONNX file"):
        sqlite_client.register_model(tmp_path / "absent.onnx", "x", input_example=np.zeros((1, 2)))
    with pytest.raises(ModelFlavorError, match="not an ONNX model"):
        (tmp_path / "junk.onnx").write_bytes(b"\x01not protobuf")
        sqlite_client.register_model(tmp_path / "junk.onnx", "x", input_example=np.zeros((1, 2)))
    assert sqlite_client.list_models() == []


def test_identity_model_without_classes_predicts_its_output(sqlite_client: Client) -> None:
    sqlite_client.register_model(_identity_model(13), "same", input_example=np.ones((2, 2)))
    rows = np.arange(6, dtype=np.float64).reshape(3, 2)
    np.testing.assert_array_equal(sqlite_client.load_model("same:1").predict(rows), rows)


def test_missing_onnxruntime_names_the_extra(
    sqlite_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_client.register_model(_identity_model(13), "same", input_example=np.ones((2, 2)))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now fails
    with pytest.raises(ModelFlavorError, match=r"same:1: .*pip install 'modelrail\[onnx\]'"):
        sqlite_client.load_model("same:1")

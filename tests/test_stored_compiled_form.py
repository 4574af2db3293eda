"""A linear model's compiled form is verified when it is registered, and the fastest verified
form stored, so serving and batch scoring use it without loading the model or importing
scikit-learn, sha256-checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import ArtifactIntegrityError
from modelrail.scoring.forms.record import forms_record, stored_blobs
from modelrail.scoring.predictor import scoring_model_for

FEATURES = ["a", "b", "c"]


def _client(root: Path) -> Client:
    init_project(root)
    return Client(settings=load_settings(cwd=root, environ={}, create=False), user="tester")


def _data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(200, 3)) * [1, 10, 100], columns=FEATURES)
    return X, (X["a"] + X["b"] / 10 > 0).astype(int)


def test_a_linear_pipeline_scores_from_its_stored_form_like_the_model(tmp_path: Path) -> None:
    X, y = _data()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    with _client(tmp_path) as client:
        with client.start_run("compiled") as run:
            version = run.log_model(model, "linear", input_example=X[:5])
        record = forms_record(version)
        assert record is not None
        linear = record.form("compiled-linear")
        assert linear is not None and linear.verified and linear.details["link"] == "logistic"
        scoring = scoring_model_for(client.artifacts, version)
        assert scoring.loaded is None
        assert scoring.predictor_kind == record.chosen["one_row"] != "sklearn"
        scored = scoring.score(X.to_numpy())
    assert scored.predictions.tolist() == model.predict(X).tolist()
    assert scored.probabilities is not None
    np.testing.assert_allclose(scored.probabilities, model.predict_proba(X), rtol=0, atol=1e-6)


def test_a_model_without_a_compiled_form_is_loaded_itself(tmp_path: Path) -> None:
    X, y = _data()
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    with _client(tmp_path) as client:
        with client.start_run("forest") as run:
            version = run.log_model(model, "forest", input_example=X[:5])
        record = forms_record(version)
        assert record is not None and record.form("compiled-linear").reason == "not linear"
        scoring = scoring_model_for(client.artifacts, version)
        assert scoring.score(X.to_numpy()).predictions.tolist() == model.predict(X).tolist()


def test_a_tampered_stored_form_is_refused(tmp_path: Path) -> None:
    X, y = _data()
    with _client(tmp_path) as client:
        with client.start_run("compiled") as run:
            version = run.log_model(LogisticRegression().fit(X, y), "linear", input_example=X[:5])
        for sha256, _, _ in stored_blobs(version):
            stored = client.artifacts.path_for(sha256)
            stored.chmod(0o644)
            data = bytearray(stored.read_bytes())
            data[-10] ^= 0xFF
            stored.write_bytes(bytes(data))
        with pytest.raises(ArtifactIntegrityError):
            scoring_model_for(client.artifacts, version)
        with pytest.raises(ArtifactIntegrityError):
            scoring_model_for(client.artifacts, version, "batch")


def test_batch_scoring_a_linear_model_never_imports_scikit_learn(tmp_path: Path) -> None:
    X, y = _data()
    with _client(tmp_path) as client, client.start_run("compiled") as run:
        run.log_model(LogisticRegression().fit(X, y), "linear", input_example=X[:5])
    frame = X.assign(id=np.arange(len(X)))
    frame.to_parquet(tmp_path / "input.parquet")
    script = f"""
import sys
from pathlib import Path
from modelrail.batch import JobSpec, run_batch
from modelrail.client import Client
from modelrail.config import load_settings
settings = load_settings(cwd=Path({str(tmp_path)!r}), environ={{}}, create=False)
with Client(settings=settings, user="tester") as client:
    spec = JobSpec(reference="linear", inputs=("input.parquet",), output="scores",
                   id_columns=("id",))
    record = run_batch(client, spec)
print(record.rows_written, "sklearn" in sys.modules, "skops" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "False", "False"]


def test_a_damaged_model_artifact_is_refused_even_with_a_stored_form(tmp_path: Path) -> None:
    X, y = _data()
    with _client(tmp_path) as client:
        with client.start_run("compiled") as run:
            version = run.log_model(LogisticRegression().fit(X, y), "linear", input_example=X[:5])
        stored = client.artifacts.path_for(version.artifact_sha256)
        stored.chmod(0o644)
        stored.write_bytes(stored.read_bytes()[:-4] + b"XXXX")
        with pytest.raises(ArtifactIntegrityError):
            scoring_model_for(client.artifacts, version)

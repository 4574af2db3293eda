"""Tracking and registration against a team server: a run logged through ``RemoteClient``
(or ``modelrail.start_run`` with ``MODELRAIL_SERVER`` set) is recorded on the server as the
signed-in user, its files uploaded and checked, its model registered there and loadable; every
write is safe to send twice; a run is written only by its owner."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelrail.config import load_settings
from modelrail.errors import PermissionDeniedError
from modelrail.remote.client import RemoteClient
from tests.server.conftest import HOST, Team


def remote(team: Team, user: str, tmp_path: Path) -> RemoteClient:
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    return RemoteClient(f"http://{HOST}:{team.port}", team.tokens[user], settings=settings)


def _survey() -> tuple[pd.DataFrame, pd.Series]:
    data = sm.datasets.fair.load_pandas().data
    frame = data[["age", "yrs_married", "religious"]].copy()
    frame["job"] = "job" + data["occupation"].astype(int).astype(str)
    return frame, (data["affairs"] > 0).astype(int)


def test_a_run_logged_through_the_server_is_recorded_as_the_signed_in_user(
    any_team: Team, tmp_path: Path
) -> None:
    frame, target = _survey()
    encode = ColumnTransformer(
        [("job", OneHotEncoder(handle_unknown="ignore"), ["job"])], remainder="passthrough"
    )
    model = make_pipeline(encode, RandomForestClassifier(n_estimators=10, random_state=0))
    model.fit(frame, target)
    client = remote(any_team, "mia", tmp_path)
    with client.start_run("survey", architecture="forest", tags={"team": "a"}) as run:
        run.log_dataset(frame.assign(target=target), name="fair", role="train")
        run.log_params({"n_estimators": 10, "encoding": "one-hot"})
        for step in range(3):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"accuracy": 0.75})
        run.log_text("a forest on the fair survey\n", "notes.txt")
        version = run.log_model(model, name="survey-forest", input_example=frame.head(5))
    assert (version.model, version.version, version.created_by) == ("survey-forest", 1, "mia")
    served = any_team.client
    recorded = served.get_run(run.id)
    assert (recorded.user, recorded.status, recorded.experiment) == ("mia", "finished", "survey")
    assert recorded.params == {"n_estimators": 10, "encoding": "one-hot"}
    assert recorded.metrics == {"loss": pytest.approx(1 / 3), "accuracy": 0.75}
    assert [p.value for p in served.metric_history(run.id, "loss")] == pytest.approx(
        [1, 1 / 2, 1 / 3]
    )
    assert set(recorded.components) >= {"code", "environment", "params", "data:train"}
    assert recorded.tags["team"] == "a"
    assert served.run_artifact(run.id, "notes.txt") == b"a forest on the fair survey\n"
    # The model file was uploaded, checked, and loads on the server as the model predicts.
    loaded = served.load_model("survey-forest:1")
    assert (loaded.predict(frame.head(50)) == model.predict(frame.head(50))).all()
    assert client.load_model("survey-forest:1").predict(frame.head(5)).tolist() == (
        model.predict(frame.head(5)).tolist()
    )
    dev = served.history("survey-forest", "dev")
    assert [(e.action, e.actor, e.to_version) for e in dev] == [("auto", "mia", 1)]
    assert client.get_model_version("survey-forest:1").forms is not None


def test_a_viewer_cannot_log_and_a_member_cannot_write_into_anothers_run(
    team: Team, tmp_path: Path
) -> None:
    with pytest.raises(PermissionDeniedError, match="log runs"):
        remote(team, "vic", tmp_path).start_run("nope")
    with remote(team, "mia", tmp_path).start_run("mine") as run:
        run.log_metric("loss", 1.0)
    reply = team.post(f"/api/v1/runs/{run.id}/metrics", "max", {"points": []})
    assert reply.status == 403 and "mia's" in reply.json()["error"]
    assert team.client.get_run(run.id).status == "finished"


def _run_body(run_id: str, experiment_id: int) -> dict[str, object]:
    return {
        "id": run_id,
        "experiment_id": experiment_id,
        "name": "retried",
        "architecture": None,
        "started_at": 1.0,
        "provenance": "{}",
        "tags": {},
        "components": [],
    }


def test_every_write_sent_twice_counts_once(team: Team) -> None:
    experiment = team.post("/api/v1/experiments", "mia", {"name": "retries"}).json()
    again = team.post("/api/v1/experiments", "mia", {"name": "retries"}).json()
    assert experiment == again
    run_id = "ab" * 16
    for _ in range(2):
        reply = team.post("/api/v1/runs", "mia", _run_body(run_id, experiment["id"]))
        assert reply.status == 200, reply.body
    assert team.client.tracker().total == 1
    points = {"points": [{"key": "loss", "value": 0.5, "step": 0, "timestamp": 10.0}]}
    first = team.post(f"/api/v1/runs/{run_id}/metrics", "mia", points)
    retry = team.post(
        f"/api/v1/runs/{run_id}/metrics", "mia", points, headers={"X-Modelrail-Retry": "1"}
    )
    assert (first.status, retry.status) == (200, 200)
    assert len(team.client.metric_history(run_id, "loss")) == 1
    params = {"params": {"depth": 3}}
    assert team.post(f"/api/v1/runs/{run_id}/params", "mia", params).status == 200
    assert team.post(f"/api/v1/runs/{run_id}/params", "mia", params).status == 200
    clash = team.post(f"/api/v1/runs/{run_id}/params", "mia", {"params": {"depth": 4}})
    assert clash.status == 409 and "depth" in clash.json()["error"]
    end = {"status": "finished", "ended_at": 2.0, "error": None, "components": []}
    assert team.post(f"/api/v1/runs/{run_id}/end", "mia", end).status == 200
    assert team.post(f"/api/v1/runs/{run_id}/end", "mia", end).status == 200
    failed = team.post(f"/api/v1/runs/{run_id}/end", "mia", {**end, "status": "failed"})
    assert failed.status == 409 and failed.json()["kind"] == "RunStateError"


def test_a_registration_sent_twice_makes_one_version(team: Team, tmp_path: Path) -> None:
    frame, target = _survey()
    numbers = frame[["age", "yrs_married", "religious"]]
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(numbers, target)
    client = remote(team, "mia", tmp_path)
    first = client.register_model(model, "twice", input_example=numbers.head(3))
    body = {
        "key": "k" * 32,
        "run_id": None,
        "flavor": first.flavor,
        "artifact_sha256": first.artifact_sha256,
        "artifact_size": first.artifact_size,
        "signature": first.signature.to_json(),
        "input_example": first.input_example,
        "flavor_details": dict(first.flavor_details),
        "description": "",
        "forms": None,
    }
    made = [team.post("/api/v1/models/twice/versions", "mia", body) for _ in range(3)]
    assert [r.status for r in made] == [200, 200, 200]
    assert {r.json()["version"] for r in made} == {2}
    assert [v.version for v in team.client.list_versions("twice")] == [1, 2]
    missing = team.post(
        "/api/v1/models/twice/versions",
        "mia",
        {**body, "key": "m" * 32, "artifact_sha256": "0" * 64},
    )
    assert missing.status >= 400 and missing.status < 500, missing.body
    assert [v.version for v in team.client.list_versions("twice")] == [1, 2]


def test_a_training_script_logs_to_the_server_it_is_pointed_at(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("training")
    (work / "train.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from sklearn.linear_model import LogisticRegression
            import modelrail

            X = np.random.default_rng(0).normal(size=(50, 3))
            y = (X[:, 0] > 0).astype(int)
            with modelrail.start_run(experiment="script") as run:
                run.log_params({"C": 1.0})
                model = LogisticRegression(C=1.0).fit(X, y)
                run.log_metrics({"accuracy": float(model.score(X, y))})
                version = run.log_model(model, name="script-model", input_example=X[:3])
            print(run.id, version.reference)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    env |= {
        "MODELRAIL_SERVER": f"http://{HOST}:{team.port}",
        "MODELRAIL_TOKEN": team.tokens["max"],
        "MODELRAIL_USER": "mallory",
    }
    done = subprocess.run(
        [sys.executable, "train.py"], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    run_id, reference = done.stdout.split()
    assert reference == "script-model:1"
    assert team.client.get_run(run_id).user == "max"
    assert not (work / ".modelrail").exists()  # nothing was created locally
    assert np.isfinite(team.client.get_run(run_id).metrics["accuracy"])

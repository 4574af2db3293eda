"""Reference profiles through a team server: a run logged through ``RemoteClient`` stores its
version's reference profile on the server, which answers it to any reader; recording one
needs the role that registers versions, happens once, and a damaged document is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.batch.spec import JobSpec
from modelrail.errors import ConflictError, MonitoringDataError, PermissionDeniedError
from modelrail.monitoring.profiles import ReferenceProfile
from tests.server.conftest import MODEL, Team, register
from tests.server.test_remote_client import remote

PATH = "/api/v1/versions/{}/reference-profile"


def _data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.choice(["x", "y"], 300)})
    frame["label"] = (frame["a"] > 0).astype(int)
    return frame.iloc[:200], frame.iloc[200:]


def test_a_version_registered_through_the_server_keeps_its_reference_profile(
    any_team: Team, tmp_path: Path
) -> None:
    train, test = _data()
    model = LogisticRegression().fit(train[["a"]], train["label"])
    mia = remote(any_team, "mia", tmp_path)
    with mia.start_run("remote-profiles") as run:
        run.log_dataset(train, role="train")
        run.log_dataset(test, role="test")
        run.log_model(model, name="served", input_example=train[["a"]].head())

    kept = any_team.client.reference_profile("served:1")
    assert kept is not None and kept.prediction is not None
    assert kept.prediction.count == len(test) and kept.test_label == "test 1.0"
    assert kept.train is not None and set(kept.train.columns) == {"a", "b", "label"}
    vic = remote(any_team, "vic", tmp_path)  # a viewer reads it
    assert vic.reference_profile("served:1") == kept == vic.reference_profile("served@dev")

    reply = any_team.get(PATH.format("served:1"), "vic")
    assert reply.status == 200 and reply.json()["profile"]["format"] == "modelrail.reference.v1"
    register(any_team.client)  # registered outside a run: no profile
    assert vic.reference_profile(f"{MODEL}:1") is None
    assert any_team.get(PATH.format(f"{MODEL}:1"), "vic").json() == {"profile": None}


def test_recording_a_profile_needs_the_log_role_and_happens_once(
    team: Team, tmp_path: Path
) -> None:
    register(team.client)
    profile = ReferenceProfile(None, None, None, train_label="train 1.0")
    with pytest.raises(PermissionDeniedError):
        remote(team, "vic", tmp_path).record_reference_profile(f"{MODEL}:1", profile)
    mia = remote(team, "mia", tmp_path)
    mia.record_reference_profile(f"{MODEL}:1", profile)
    mia.record_reference_profile(f"{MODEL}:1", profile, actor="someone")  # a retry
    with pytest.raises(ConflictError, match="already has a reference profile"):
        mia.record_reference_profile(f"{MODEL}:1", ReferenceProfile(None, None, None))
    assert team.client.reference_profile(f"{MODEL}:1") == profile


def test_a_damaged_profile_is_refused_with_422_naming_the_field(team: Team) -> None:
    register(team.client)
    damaged = {"format": "modelrail.reference.v1", "prediction": {"kind": "numeric", "count": -1}}
    reply = team.post(PATH.format(f"{MODEL}:1"), "mia", {"profile": damaged})
    assert reply.status == 422, reply.body
    assert "field 'count'" in reply.json()["error"]
    assert team.post(PATH.format(f"{MODEL}:1"), "mia", {"profile": [1]}).status == 422
    assert team.post(PATH.format(f"{MODEL}:1"), "mia", {"other": 1}).status == 422
    assert team.get(PATH.format(f"{MODEL}:7"), "vic").status == 404
    assert team.client.reference_profile(f"{MODEL}:1") is None
    with pytest.raises(MonitoringDataError):
        ReferenceProfile.from_json(damaged)


def test_a_batch_run_through_the_server_records_what_it_scored(team: Team, tmp_path: Path) -> None:
    register(team.client)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(90)], "a": [i % 5 for i in range(90)]})
    frame["b"] = 1.0
    frame.to_parquet(tmp_path / "in.parquet")
    spec = JobSpec(
        reference=f"{MODEL}:1",
        inputs=(str(tmp_path / "in.parquet"),),
        output=f"sqlite:///{tmp_path / 'scores.db'}",
        table="scores",
        id_columns=("id",),
    )
    mia = remote(team, "mia", tmp_path)
    run = mia.run_batch(spec)
    profile = team.client.batch_profile(run.id)
    assert profile is not None and profile == mia.batch_profile(run.id[:8])
    assert profile.input is not None and list(profile.input.columns) == ["a", "b"]
    assert profile.input.columns["a"].edges == (0.0, 1.0, 2.0, 3.0, 4.0, 4.0)
    assert profile.prediction is not None and profile.prediction.count == 90

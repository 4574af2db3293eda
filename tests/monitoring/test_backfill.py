"""A version registered without a reference profile (before profiles existed, or outside a
run) gets one afterwards from its run's datasets, read again where the run recorded them or
where the user says they are now, and only when they are the data the run logged: from the
library, the command line and a team server, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import ConflictError, InvalidInputError, NotFoundError
from modelrail.monitoring.dataset_profiles import fingerprint_and_profile
from modelrail.remote.client import RemoteClient
from modelrail.store.profiles_repo import ReferenceProfileRepository
from tests.cli.test_cli import MODELRAIL
from tests.server.conftest import HOST, Team, start_team

FEATURES = ["region", "age"]


def _people(rows: int, seed: int) -> pd.DataFrame:
    """String categories with gaps, numbers with gaps, a label that is text."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east", None], rows),
            "age": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(40, 12, rows)),
        }
    )
    frame["risk"] = np.where(frame["age"].fillna(40) > 45, "high", "low")
    return frame


def _model() -> object:
    encode = make_column_transformer(
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["region"]),
        remainder="passthrough",
    )
    train = _people(500, 1)
    return make_pipeline(encode, HistGradientBoostingClassifier(max_iter=20)).fit(
        train[FEATURES], train["risk"]
    )


@pytest.fixture
def project(store_url: str, tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    """A store (SQLite, then PostgreSQL) with churn:1, registered by a run that logged its
    train and test files, whose profile is gone as if registered before profiles existed."""
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    _people(500, 1).to_parquet(tmp_path / "train.parquet")
    _people(200, 2).to_csv(tmp_path / "test.csv", index=False)
    with Client(store_url=store_url, settings=settings, user="tester") as client:
        with client.start_run("risk") as run:
            run.log_dataset(tmp_path / "train.parquet", role="train")
            run.log_dataset(str(tmp_path / "test.csv"), role="test")
            run.log_model(_model(), "risk", input_example=_people(5, 3)[FEATURES])
        _forget_profile(client)
        yield client, tmp_path


def _forget_profile(client: Client) -> None:
    from sqlalchemy import text

    with client.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM reference_profiles"))
    assert client.reference_profile("risk:1") is None
    assert ReferenceProfileRepository(client.db).get("risk", 1) is None


def test_the_runs_files_are_profiled_again_and_the_model_predicts_the_test_data(
    project: tuple[Client, Path],
) -> None:
    client, root = project
    made = client.profile_version("risk@dev")
    assert client.reference_profile("risk:1") == made
    assert made.train == fingerprint_and_profile(root / "train.parquet").profile
    assert made.test == fingerprint_and_profile(root / "test.csv").profile
    assert (made.train_label, made.test_label, made.prediction_data) == (
        "train 1.0",
        "test 1.0",
        "test",
    )
    assert made.prediction is not None and made.prediction.kind == "categorical"
    test = pd.read_csv(root / "test.csv")
    predicted = pd.Series(client.load_model("risk:1").predict(test[FEATURES]))
    assert made.prediction.frequencies == pytest.approx(
        predicted.value_counts(normalize=True).to_dict(), abs=1e-6
    )
    assert made.notes[-1] == "made after registration (backfill)"

    with pytest.raises(ConflictError, match="has a reference profile already"):
        client.profile_version("risk:1")  # written once


def test_moved_data_is_found_where_given_and_other_data_is_refused(
    project: tuple[Client, Path],
) -> None:
    client, root = project
    moved = root / "archive"
    moved.mkdir()
    (root / "test.csv").rename(moved / "test.csv")
    with pytest.raises(InvalidInputError, match=r"test data: nothing at .*test\.csv .*data test="):
        client.profile_version("risk:1")
    other = root / "other.csv"
    _people(200, 9).to_csv(other, index=False)
    with pytest.raises(InvalidInputError, match="is not the data risk:1 was trained and tested"):
        client.profile_version("risk:1", {"test": other})
    with pytest.raises(InvalidInputError, match="the roles are train, validation, test"):
        client.profile_version("risk:1", {"holdout": other})
    assert client.reference_profile("risk:1") is None  # nothing kept from a refusal

    made = client.profile_version("risk:1", {"test": moved / "test.csv"})
    assert made.test == fingerprint_and_profile(moved / "test.csv").profile


def test_a_version_registered_outside_a_run_is_profiled_from_the_data_given(
    local_client: Client, tmp_path: Path
) -> None:
    version = local_client.register_model(_model(), "loose", input_example=_people(5, 3)[FEATURES])
    assert local_client.reference_profile(version.reference) is None
    with pytest.raises(InvalidInputError, match="its run recorded none; give it with"):
        local_client.profile_version("loose:1")
    _people(300, 4).to_parquet(tmp_path / "seen.parquet")
    made = local_client.profile_version("loose:1", {"train": tmp_path / "seen.parquet"})
    assert made.train is not None and made.train.rows == 300
    assert made.train_label == "train" and made.prediction_data == "train"


@pytest.fixture
def local_client(tmp_path: Path) -> Iterator[Client]:
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings, user="tester") as client:
        yield client


def test_the_command_profiles_and_says_what_it_refuses(
    local_client: Client, tmp_path: Path
) -> None:
    local_client.register_model(_model(), "loose", input_example=_people(5, 3)[FEATURES])
    _people(300, 4).to_csv(tmp_path / "seen.csv", index=False)

    def modelrail(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MODELRAIL, "models", "profile", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")},
        )

    missing = modelrail("loose:1")
    assert missing.returncode == 2 and "give it with --data train=PATH" in missing.stderr
    bad = modelrail("loose:1", "--data", "seen.csv")
    assert bad.returncode == 2 and "must be ROLE=PATH" in bad.stderr
    absent = modelrail("loose:7")
    assert absent.returncode == 4 and "no version 7" in absent.stderr
    done = modelrail("loose:1", "--data", "train=seen.csv")
    assert done.returncode == 0, done.stderr
    assert "profiled loose:1: train (3 columns, 300 rows), predictions on the train data" in (
        done.stdout
    )
    again = modelrail("loose:1", "--data", "train=seen.csv")
    assert again.returncode == 5 and "has a reference profile already" in again.stderr
    everything = missing.stderr + bad.stderr + absent.stderr + done.stderr + again.stderr
    assert "Traceback" not in everything


def test_a_member_profiles_through_the_team_server(tmp_path: Path) -> None:
    server = tmp_path / "server"
    teams = start_team(f"sqlite:///{server / '.modelrail' / 'modelrail.db'}", server)
    team: Team = next(teams)
    try:
        team.client.register_model(_model(), "loose", input_example=_people(5, 3)[FEATURES])
        laptop = tmp_path / "laptop"
        laptop.mkdir()
        _people(300, 4).to_parquet(laptop / "seen.parquet")
        settings = load_settings(cwd=laptop, environ={}, create=False)
        url = f"http://{HOST}:{team.port}"
        viewer = RemoteClient(url, team.tokens["vic"], settings=settings)
        with pytest.raises(Exception, match="role"):
            viewer.profile_version("loose:1", {"train": laptop / "seen.parquet"})
        member = RemoteClient(url, team.tokens["mia"], settings=settings)
        made = member.profile_version("loose:1", {"train": laptop / "seen.parquet"})
        assert team.client.reference_profile("loose:1") == made
        with pytest.raises(NotFoundError):
            member.profile_version("nothing:1", {"train": laptop / "seen.parquet"})
    finally:
        teams.close()

"""Environment commands as a user runs them: gate tables, exit codes, approvals by
another identity, rollback and the history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import load_settings
from tests.cli.test_cli import cli
from tests.test_environments import damage
from tests.test_pickle_policy import REFUSED, Halves

POLICY = """
[environments]
chain = ["dev", "staging", "prod"]

[environments.staging]
min = { accuracy = 0.85 }

[environments.prod]
approval = true
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert cli(tmp_path, "init").returncode == 0
    (tmp_path / "modelrail.toml").write_text(POLICY)
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["age", "weight", "height"])
    model = LogisticRegression().fit(X, (X["age"] > 0).astype(int))
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings, user="alice") as client:
        for accuracy in (0.9, 0.8, 0.95):
            with client.start_run("pets") as run:
                run.log_metric("accuracy", accuracy)
                run.log_model(model, "pets-classifier", input_example=X[:3])
    return tmp_path


def as_user(user: str) -> dict[str, str]:
    return {"MODELRAIL_USER": user}


def test_promote_prints_each_gate_and_the_change(project: Path) -> None:
    done = cli(project, "promote", "pets-classifier:1", "--to", "staging", "-r", "first")
    assert done.returncode == 0, done.stderr
    assert "min accuracy >= 0.85" in done.stdout and "pass" in done.stdout and "0.9" in done.stdout
    assert "promoted pets-classifier 1 to staging (was empty)" in done.stdout


def test_failed_gate_exits_non_zero_and_changes_nothing(project: Path) -> None:
    done = cli(project, "promote", "pets-classifier:2", "--to", "staging")
    assert done.returncode == 7
    assert "FAIL" in done.stdout and "0.8" in done.stdout
    assert "did not pass the gates of staging" in done.stderr
    board = json.loads(cli(project, "envs", "--json").stdout)
    assert board["holdings"]["staging"] == {}


def test_prod_needs_staging_first(project: Path) -> None:
    done = cli(project, "promote", "pets-classifier:3", "--to", "prod")
    assert done.returncode == 2
    assert "never been in staging" in done.stderr and "Traceback" not in done.stderr


def test_approval_by_someone_else_then_rollback_and_history(project: Path) -> None:
    for version in ("1", "3"):
        promoted = cli(project, "promote", f"pets-classifier:{version}", "--to", "staging")
        assert promoted.returncode == 0, promoted.stderr
    requested = cli(project, "promote", "pets-classifier:1", "--to", "prod", env=as_user("alice"))
    assert "request 1 waiting for approval by someone other than alice" in requested.stdout
    own = cli(project, "approve", "1", env=as_user("alice"))
    assert own.returncode == 2 and "someone else" in own.stderr
    approved = cli(project, "approve", "1", "-r", "ok", env=as_user("bob"))
    assert approved.returncode == 0, approved.stderr
    again = cli(project, "approve", "1", env=as_user("carol"))
    assert again.returncode == 5 and "already approved by bob" in again.stderr

    cli(project, "promote", "pets-classifier:3", "--to", "prod", env=as_user("alice"))
    assert cli(project, "approve", "2", env=as_user("bob")).returncode == 0
    rolled = cli(
        project,
        "rollback",
        "pets-classifier",
        "--env",
        "prod",
        "-r",
        "bad night",
        env=as_user("alice"),
    )
    assert rolled.returncode == 0 and "version 3 -> 1" in rolled.stdout
    past = cli(project, "rollback", "pets-classifier", "--env", "prod")
    assert past.returncode == 2 and "first version" in past.stderr

    events = json.loads(
        cli(project, "history", "pets-classifier", "--env", "prod", "--json").stdout
    )
    assert [(e["action"], e["from_version"], e["to_version"], e["actor"]) for e in events] == [
        ("request", None, 1, "alice"),
        ("approve", None, 1, "bob"),
        ("request", 1, 3, "alice"),
        ("approve", 1, 3, "bob"),
        ("rollback", 3, 1, "alice"),
    ]
    table = cli(project, "history", "pets-classifier").stdout
    assert "bad night" in table and "approve #1" in table
    board = cli(project, "envs").stdout
    assert "pets-classifier" in board and "staging" in board


def test_reject_is_recorded_and_the_request_closes(project: Path) -> None:
    cli(project, "promote", "pets-classifier:1", "--to", "staging")
    cli(project, "promote", "pets-classifier:1", "--to", "prod", env=as_user("alice"))
    done = cli(project, "reject", "1", "-r", "not this week", env=as_user("bob"))
    assert done.returncode == 0, done.stderr
    assert cli(project, "approve", "1", env=as_user("carol")).returncode == 5
    actions = [e["action"] for e in json.loads(cli(project, "history", "--json").stdout)]
    assert actions[-2:] == ["request", "reject"]


def test_deciding_a_decided_or_expired_request_is_a_conflict(project: Path) -> None:
    """Exit code 5 (ConflictError, HTTP 409), not 2: the request's state is the obstacle."""
    for version in ("1", "3"):
        cli(project, "promote", f"pets-classifier:{version}", "--to", "staging")
    cli(project, "promote", "pets-classifier:1", "--to", "prod", env=as_user("alice"))
    assert cli(project, "approve", "1", env=as_user("bob")).returncode == 0
    cli(project, "promote", "pets-classifier:3", "--to", "prod", env=as_user("alice"))
    assert cli(project, "reject", "2", env=as_user("bob")).returncode == 0
    # Requests in prod now expire the moment they are opened.
    (project / "modelrail.toml").write_text(POLICY + "approval_expires_hours = 0\n")
    expiring = cli(project, "promote", "pets-classifier:3", "--to", "prod", env=as_user("alice"))
    assert "request 3 waiting" in expiring.stdout, expiring.stderr
    history = cli(project, "history", "--json").stdout
    for command, number, why in (
        ("approve", "1", "request 1 was already approved by bob"),
        ("reject", "2", "request 2 was already rejected by bob"),
        ("approve", "3", "request 3 expired at "),
    ):
        done = cli(project, command, number, env=as_user("carol"))
        assert done.returncode == 5, (command, number, done.stderr)
        assert done.stderr.startswith(f"error: {why}") and "Traceback" not in done.stderr
    assert cli(project, "history", "--json").stdout == history


def test_force_needs_a_reason_and_is_recorded(project: Path) -> None:
    bare = cli(project, "promote", "pets-classifier:2", "--to", "prod", "--force")
    assert bare.returncode == 2 and "--reason" in bare.stderr
    done = cli(
        project, "promote", "pets-classifier:2", "--to", "prod", "--force", "-r", "incident 42"
    )
    assert done.returncode == 0 and "forced" in done.stdout
    (event,) = json.loads(cli(project, "history", "--env", "prod", "--json").stdout)
    assert event["forced"] is True and event["reason"] == "incident 42"


def test_force_refuses_a_damaged_model_file_like_rollback_with_exit_6(project: Path) -> None:
    settings = load_settings(cwd=project, environ={}, create=False)
    with Client(settings=settings) as client:
        path = damage(client, client.get_model_version("pets-classifier:2").artifact_sha256)
    for _ in range(3):
        done = cli(project, "promote", "pets-classifier:2", "--to", "prod", "--force", "-r", "now")
        assert done.returncode == 6, done.stdout + done.stderr
        assert done.stderr.startswith(f"error: artifact pets-classifier:2 ({path}) has sha256 ")
        assert "refusing to load it" in done.stderr and "Traceback" not in done.stderr
    assert json.loads(cli(project, "history", "--env", "prod", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("promote", "ghost:1", "--to", "staging"), 4, "no model named 'ghost'"),
        (("promote", "pets-classifier:9", "--to", "staging"), 4, "no version 9"),
        (("promote", "pets-classifier:1", "--to", "qa"), 4, "unknown environment 'qa'"),
        (("promote", "pets-classifier:3", "--to", "dev"), 2, "already holds"),
        (("approve", "99"), 4, "no approval request 99"),
        (("rollback", "pets-classifier", "--env", "staging"), 2, "holds no version"),
        (("history", "--env", "moon"), 4, "unknown environment 'moon'"),
    ],
)
def test_bad_input_is_one_clear_line(
    project: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    done = cli(project, *args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_wrong_key_in_modelrail_toml_is_reported_with_its_line(project: Path) -> None:
    (project / "modelrail.toml").write_text(POLICY + "\n[environments.prod.settings]\nport = 1\n")
    done = cli(project, "envs")
    assert done.returncode == 2
    assert "modelrail.toml:12: unknown setting 'port'" in done.stderr


def test_prod_shows_and_enforces_the_pickle_policy_even_forced(project: Path) -> None:
    settings = load_settings(cwd=project, environ={}, create=False)
    with Client(settings=settings) as client:
        with client.start_run("pets") as run:
            X = pd.DataFrame(np.ones((3, 3)), columns=["age", "weight", "height"])
            run.log_metric("accuracy", 0.9)
            run.log_model(Halves(), "pets-classifier", input_example=X, allow_pickle=True)
        client.promote("pets-classifier:4", "staging")
        client.promote("pets-classifier:3", "staging")
    for extra in ((), ("--force", "-r", "incident 42")):
        done = cli(project, "promote", "pets-classifier:4", "--to", "prod", *extra)
        assert done.returncode == 7, done.stdout + done.stderr
        (line,) = [row for row in done.stdout.splitlines() if "safe format" in row]
        assert " ".join(line.split()) == f"safe format FAIL {REFUSED.detail}"
        assert "nothing was changed" in done.stderr and "Traceback" not in done.stderr
    safe = cli(project, "promote", "pets-classifier:3", "--to", "prod")
    assert safe.returncode == 0, safe.stderr
    assert "safe format" in safe.stdout and "skops" in safe.stdout
    assert (
        json.loads(cli(project, "history", "--env", "prod", "--json").stdout)[0]["action"]
        == "request"
    )

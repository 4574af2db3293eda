"""The library against a team server: ``RemoteClient`` gives the same records a local
``Client`` of the same store gives, raises the same error classes, and acts as the signed-in
user; the CLI logs in, keeps the token privately and runs its commands against the server."""

from __future__ import annotations

import inspect
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import GateResult
from modelrail.errors import (
    AuthenticationError,
    ConflictError,
    CredentialsError,
    GateFailedError,
    ModelVersionNotFoundError,
    NotOnServerError,
    PermissionDeniedError,
    ServerUnavailableError,
    StoreURLError,
)
from modelrail.remote import credentials
from modelrail.remote.client import RemoteClient
from modelrail.store.tracker_query import TrackerQuery
from tests.server.conftest import HOST, MODEL, Team, register
from tests.server.test_cli import free_port

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))


def remote(team: Team, user: str, tmp_path: Path) -> RemoteClient:
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    return RemoteClient(f"http://{HOST}:{team.port}", team.tokens[user], settings=settings)


def _public(kind: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(kind, inspect.isfunction)
        if not name.startswith("_")
    }


def test_every_remote_method_has_the_signature_of_its_client_namesake() -> None:
    local, served = _public(Client), _public(RemoteClient)
    assert set(served) - {"whoami"} <= set(local)
    for name, signature in served.items():
        if name != "whoami":
            assert signature == local[name], name


def test_reads_give_what_a_local_client_of_the_store_gives(any_team: Team, tmp_path: Path) -> None:
    register(any_team.client)
    with any_team.client.start_run("remote-reads") as run:
        run.log_metrics({"accuracy": 0.9})
        run.log_metric("loss", 0.5, step=3)
    local = any_team.client
    client = remote(any_team, "vic", tmp_path)
    assert client.list_models() == local.list_models()
    assert client.list_versions(MODEL) == local.list_versions(MODEL)
    for reference in (f"{MODEL}:1", MODEL, f"{MODEL}@dev"):
        assert client.get_model_version(reference) == local.get_model_version(reference)
    assert client.board() == local.board()
    assert client.environments() == local.environments()
    assert client.history(MODEL) == local.history(MODEL)
    query = TrackerQuery(metrics=("accuracy",), sort="accuracy", limit=5)
    assert client.tracker(query) == local.tracker(query)
    assert client.get_run(run.id) == local.get_run(run.id)
    assert client.get_run(run.id[:8]) == local.get_run(run.id)
    assert client.experiments() == local.experiments()
    assert client.metric_history(run.id, "loss") == local.metric_history(run.id, "loss")
    assert client.best_run("accuracy").id == run.id
    with pytest.raises(ModelVersionNotFoundError):
        client.get_model_version(f"{MODEL}:99")


def test_changes_are_made_as_the_signed_in_user_with_the_same_errors(
    any_team: Team, tmp_path: Path
) -> None:
    register(any_team.client)
    mia, ann = remote(any_team, "mia", tmp_path), remote(any_team, "ann", tmp_path)
    assert mia.promote(f"{MODEL}:1", "staging", reason="ready", actor="ann").event.actor == "mia"
    waiting = mia.promote(f"{MODEL}:1", "prod", reason="ship").request
    assert waiting is not None and waiting.requested_by == "mia"
    assert [r.id for r in ann.approval_requests()] == [waiting.id]
    with pytest.raises(PermissionDeniedError) as refused:
        mia.approve(waiting.id)
    assert (refused.value.action, refused.value.environment) == ("approve", "prod")
    assert refused.value.exit_code == 12
    outcome = ann.approve(waiting.id, reason="checked")
    assert (outcome.version, outcome.event and outcome.event.actor) == (1, "ann")
    with pytest.raises(ConflictError, match="already approved by ann"):
        ann.approve(waiting.id)
    assert [e.actor for e in any_team.client.history(MODEL, "prod")] == ["mia", "ann"]


def test_a_failed_gate_comes_back_with_every_gate_result(any_team: Team, tmp_path: Path) -> None:
    register(any_team.client)
    any_team.client.promote(f"{MODEL}:1", "staging", reason="first")
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "other": [1.0, 0.0, 1.0, 0.0]})
    other = LogisticRegression().fit(X, [0, 0, 1, 1])
    any_team.client.register_model(other, MODEL, input_example=X[:2])
    with pytest.raises(GateFailedError) as failed:
        remote(any_team, "mia", tmp_path).promote(f"{MODEL}:2", "staging", reason="new columns")
    assert failed.value.exit_code == 7
    results = failed.value.results
    assert results and all(isinstance(r, GateResult) for r in results)
    assert [r.gate for r in results if not r.passed] == ["signature compatible"]
    assert any_team.client.environments()[1].holdings[MODEL].version == 1


def test_a_wrong_token_an_absent_server_and_what_no_server_offers(
    team: Team, tmp_path: Path
) -> None:
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with pytest.raises(AuthenticationError) as refused:
        RemoteClient(f"http://{HOST}:{team.port}", "mr_wrong", settings=settings).list_models()
    assert "mr_wrong" not in str(refused.value)
    with pytest.raises(StoreURLError, match="is not an http:// or https:// URL"):
        RemoteClient("models.internal:5050", "t", settings=settings)
    gone = RemoteClient(f"http://{HOST}:{free_port()}", "t", settings=settings, patient=False)
    with pytest.raises(ServerUnavailableError, match="cannot be reached"):
        gone.list_models()
    with pytest.raises(NotOnServerError, match="compile model is not offered"):
        remote(team, "vic", tmp_path).compile_model(f"{MODEL}:1")


# -- the command line -----------------------------------------------------------------------


def _cli(args: list[str], cwd: Path, env: dict[str, str], stdin: str = "") -> tuple[int, str]:
    done = subprocess.run(
        [MODELRAIL, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def _laptop(factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A folder outside any project (the server's is under ``tmp_path``), and an
    environment with a private credentials file."""
    home = factory.mktemp("laptop")
    folder = home / "work"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    env["MODELRAIL_CREDENTIALS"] = str(home / "secret" / "credentials.json")
    env["MODELRAIL_USER"] = "mallory"  # ignored by the server: the token says who acts
    return folder, env


def test_login_keeps_the_token_privately_and_commands_then_use_the_server(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register(team.client)
    folder, env = _laptop(tmp_path_factory)
    url = f"http://{HOST}:{team.port}"
    started = time.monotonic()
    nowhere = f"http://{HOST}:{free_port()}"
    code, out = _cli(["login", nowhere, "--token-stdin"], folder, env, team.tokens["mia"] + "\n")
    assert code == 3 and "cannot be reached" in out and team.tokens["mia"] not in out
    assert time.monotonic() - started < 10  # a wrong address is said at once, not retried
    code, out = _cli(["login", url, "--token-stdin"], folder, env, "mr_not_a_token\n")
    assert code == 11 and "mr_not_a_token" not in out
    assert not Path(env["MODELRAIL_CREDENTIALS"]).exists()
    code, out = _cli(["login", url + "/", "--token-stdin"], folder, env, team.tokens["mia"] + "\n")
    assert code == 0 and "as mia (member)" in out, out
    kept = Path(env["MODELRAIL_CREDENTIALS"])
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert json.loads(kept.read_text())["servers"] == {url: team.tokens["mia"]}
    assert _cli(["whoami"], folder, env) == (0, f"mia at {url} (member)\n")
    code, out = _cli(["promote", f"{MODEL}:1", "--to", "staging", "--reason", "r"], folder, env)
    assert code == 0 and "promoted tiny 1 to staging" in out, out
    assert team.client.history(MODEL, "staging")[0].actor == "mia"
    code, out = _cli(
        ["promote", f"{MODEL}:1", "--to", "prod", "--force", "--reason", "x"], folder, env
    )
    assert code == 12 and "needs the admin role" in out, out
    code, out = _cli(["models", "--json"], folder, env)
    assert code == 0 and json.loads(out)[0]["name"] == MODEL
    code, out = _cli(["models", "compile", f"{MODEL}:1"], folder, env)
    assert code == 2 and "not offered by a modelrail server" in out and "Traceback" not in out
    assert _cli(["logout"], folder, env) == (0, f"signed out of {url}\n")
    code, out = _cli(["models"], folder, env)
    assert code == 2 and "modelrail login" in out


def test_a_local_project_is_used_before_a_login_and_the_setting_picks_the_server(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder, env = _laptop(tmp_path_factory)
    credentials.remember(f"http://{HOST}:{team.port}", team.tokens["vic"], env)
    init_project(folder)
    code, out = _cli(["whoami"], folder, env)
    assert code == 0 and out.startswith("mallory at sqlite:"), out
    code, out = _cli(["whoami"], folder, {**env, "MODELRAIL_SERVER": f"http://{HOST}:{team.port}"})
    assert code == 0 and out.startswith("vic at http://"), out
    outside = folder.parent / "elsewhere"
    outside.mkdir()
    code, out = _cli(["whoami"], outside, {**env, "MODELRAIL_SERVER": ""})
    assert code == 2 and "no modelrail project" in out


def test_an_unreadable_credentials_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match=str(path)):
        credentials.token_for("http://x", {"MODELRAIL_CREDENTIALS": str(path)})

"""``modelrail promote`` into an environment with gates from live data shows the numbers behind
each gate and exits 7 when the candidate's logged traffic falls short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.config import load_settings
from tests.cli.test_cli import cli
from tests.test_gates_live import MODEL, label, log_traffic, register, training_frame

POLICY = """
[environments]
chain = ["dev", "staging", "prod"]

[environments.prod]
approval = false
runtime_compatible = false
min_live_requests = 100
live_beats_incumbent = true
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    from sklearn.linear_model import LogisticRegression

    assert cli(tmp_path, "init").returncode == 0
    (tmp_path / "modelrail.toml").write_text(POLICY, encoding="utf-8")
    X = training_frame()
    model = LogisticRegression().fit(X, (X["tenure"] > 0).astype(int))
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings, user="alice") as client:
        register(client, model)
        register(client, model)
        client.promote(f"{MODEL}:1", "staging", reason="first")
        client.promote(f"{MODEL}:1", "prod", force=True, reason="the incumbent")
        client.promote(f"{MODEL}:2", "staging", reason="the candidate")
        theirs = log_traffic(client, 1, "prod", 20)
        label(client, theirs, ["1"] * 18 + ["0"] * 2)
        ours = log_traffic(client, 2, "staging", 20, rate=0.25)
        label(client, ours, ["1"] * 10 + ["0"] * 10)
    return tmp_path


def test_promote_prints_the_live_gates_numbers_and_refuses(project: Path) -> None:
    done = cli(project, "promote", f"{MODEL}:2", "--to", "prod", "-r", "ready?")
    assert done.returncode == 7, done.stderr
    text = " ".join(done.stdout.split())  # the table may wrap a detail over lines
    assert "at least 100 live requests in staging" in text
    assert "80 requests of version 2" in text and "20 logged" in text
    assert "live accuracy at least the incumbent's" in text
    assert "0.5 on 20 labelled" in text and "0.9 on 20 labelled" in text
    assert "did not pass the gates of prod" in done.stderr
    board = json.loads(cli(project, "envs", "--json").stdout)
    assert board["holdings"]["prod"] == {MODEL: 1}

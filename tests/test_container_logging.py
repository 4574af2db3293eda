"""A server of a bundle (what a Docker image runs) logs its predictions where
MODELRAIL_MONITORING_ROOT says, keeping out what its environment's policy kept out when the
image was built; without a place for the log, asking for one is a clear error."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.monitoring.logfiles import read_feedback, read_predictions

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))
POLICY = """
[environments.staging.monitoring]
log_predictions = 1.0
exclude_columns = ["secret"]
"""


def _env(**extra: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    return {**kept, **extra}


def _context(root: Path) -> Path:
    init_project(root)
    (root / "modelrail.toml").write_text((root / "modelrail.toml").read_text() + POLICY)
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "secret"])
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    with Client(settings=load_settings(cwd=root, environ={}, create=False)) as client:
        with client.start_run("img") as run:
            run.log_model(model, "imaged", input_example=X[:3])
        client.promote("imaged:1", "staging", reason="for the image")
    context = root / "ctx"
    subprocess.run(
        [MODELRAIL, "docker", "build", "--env", "staging", "--context-only", str(context)],
        cwd=root, capture_output=True, timeout=300, env=_env(), check=True,
    )  # fmt: skip
    return context / "bundle"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(port: int, path: str, payload: object) -> tuple[int, dict[str, str], dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def test_a_bundle_server_logs_predictions_and_labels_where_the_variable_says(
    tmp_path: Path,
) -> None:
    bundle = _context(tmp_path / "project")
    logs = tmp_path / "volume"
    port = _free_port()
    server = subprocess.Popen(
        [MODELRAIL, "serve", "--bundle", str(bundle), "--port", str(port)],
        cwd=tmp_path, env=_env(MODELRAIL_MONITORING_ROOT=str(logs)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        row = {"a": 0.5, "b": -1.0, "secret": 3.0}
        status, headers, _ = _post(port, "/v1/models/imaged/predict", {"inputs": [row]})
        request_id = headers["x-request-id"]
        assert status == 200
        status, _, _ = _post(
            port,
            "/v1/feedback",
            {"model": "imaged", "labels": [{"request_id": request_id, "label": 1}]},
        )
        assert status == 200
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    # uvicorn stops gracefully on SIGTERM (docker stop), then dies of the signal it caught.
    assert server.returncode in (0, -15), errors.decode()
    assert b"Traceback" not in errors
    logged = read_predictions(logs, "imaged").to_pylist()
    assert [(r["request_id"], r["environment"], r["input.a"]) for r in logged] == [
        (request_id, "staging", 0.5)
    ]
    assert "input.secret" not in logged[0]  # kept out by the policy the image was built with
    assert read_feedback(logs, "imaged").column("label").to_pylist() == ["1"]


def test_asking_a_bundle_to_log_with_nowhere_to_log_is_a_clear_error(tmp_path: Path) -> None:
    bundle = _context(tmp_path / "project")
    done = subprocess.run(
        [MODELRAIL, "serve", "--bundle", str(bundle), "--port", str(_free_port()),
         "--log-predictions", "0.5"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "--log-predictions" in done.stderr and "MODELRAIL_MONITORING_ROOT" in done.stderr
    assert "Traceback" not in done.stderr

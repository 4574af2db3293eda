"""``modelrail serve`` as a user starts it: bad configurations stop it at start-up with a clear
message and a non-zero exit, and ``--wait`` starts not-ready and picks up a promotion."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import ModelVersion
from tests.serving.conftest import (
    HOST,
    MODELRAIL,
    START_TIMEOUT_S,
    Http,
    clean_environ,
    free_port,
    is_listening,
    records,
    wait_until_healthy,
)

SERVER_START_ERROR = 8  # ServerStartError's exit code
FAIL_TIMEOUT_S = 60
MODEL = "cancer"


Fitted = tuple[Any, pd.DataFrame]


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    return model, X


@dataclass
class Project:
    root: Path

    def client(self) -> Client:
        return Client(settings=load_settings(cwd=self.root, environ={}, create=False), user="t")

    def register(self, fitted: Fitted) -> ModelVersion:
        model, X = fitted
        with self.client() as client:
            return client.register_model(model, MODEL, input_example=X.iloc[:5])


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    init_project(root)
    return Project(root)


def serve_and_fail(project: Project, *args: str) -> tuple[int, str]:
    """Run ``modelrail serve ARGS``, which must exit by itself; return (code, stderr)."""
    done = subprocess.run(
        [MODELRAIL, "serve", *args],
        cwd=project.root,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=FAIL_TIMEOUT_S,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    # The address is printed only once the server listens with its models loaded.
    assert "serving" not in done.stdout and "http://" not in done.stdout, done.stdout
    return done.returncode, " ".join(done.stderr.split())


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(project: Project, *args: str) -> Iterator[ServeProcess]:
    """``modelrail serve ARGS --port P`` in the background, healthy; always stopped after."""
    port = free_port()
    log = project.root / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [MODELRAIL, "serve", *args, "--port", str(port), "--poll-interval", "0.1"],
            cwd=project.root,
            env=clean_environ(),
            stdout=sink,
            stderr=sink,
        )
    running = ServeProcess(process, port, log)
    try:
        wait_until_healthy(port, START_TIMEOUT_S, alive=lambda: process.poll() is None)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def poll(http_: Http, path: str, status: int, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = http_.get(path)
        if reply.status == status or time.monotonic() > deadline:
            assert reply.status == status, reply.text
            return reply.json()
        time.sleep(0.05)


# -- refusing to start ------------------------------------------------------------------------


def test_an_environment_that_holds_no_model_exits_8_saying_so(
    project: Project, fitted: Fitted
) -> None:
    project.register(fitted)  # dev holds it; staging holds nothing
    port = free_port()
    code, stderr = serve_and_fail(project, "--env", "staging", "--port", str(port))
    assert code == SERVER_START_ERROR, stderr
    assert "staging holds no model" in stderr
    assert "--wait" in stderr  # and says how to start anyway
    assert not is_listening(port)


def test_an_empty_project_exits_8_saying_the_environment_holds_no_model(
    project: Project,
) -> None:
    port = free_port()
    code, stderr = serve_and_fail(project, "--env", "dev", "--port", str(port))
    assert code == SERVER_START_ERROR, stderr
    assert "dev holds no model" in stderr
    assert not is_listening(port)


def test_a_model_the_environment_does_not_hold_exits_8_naming_it(
    project: Project, fitted: Fitted
) -> None:
    project.register(fitted)
    code, stderr = serve_and_fail(
        project, "--env", "dev", "--model", "no-such-model", "--port", str(free_port())
    )
    assert code == SERVER_START_ERROR, stderr
    assert "no-such-model" in stderr


def test_a_port_in_use_exits_8_naming_the_port(project: Project, fitted: Fitted) -> None:
    project.register(fitted)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, stderr = serve_and_fail(project, "--env", "dev", "--port", str(port))
    assert code == SERVER_START_ERROR, stderr
    assert f"port {port}" in stderr
    assert "in use" in stderr


@pytest.mark.parametrize("tampering", ["one byte changed", "truncated"])
def test_an_artifact_whose_sha256_does_not_match_exits_8_naming_the_model(
    project: Project, fitted: Fitted, tampering: str
) -> None:
    version = project.register(fitted)
    with project.client() as client:
        stored = client.artifacts.path_for(version.artifact_sha256)
    content = bytearray(stored.read_bytes())
    if tampering == "truncated":
        content = content[:-10]
    else:
        content[len(content) // 2] ^= 0xFF
    stored.chmod(0o644)
    stored.write_bytes(bytes(content))
    port = free_port()
    code, stderr = serve_and_fail(project, "--env", "dev", "--port", str(port))
    assert code == SERVER_START_ERROR, stderr
    assert f"cannot serve {MODEL}@dev" in stderr
    assert f"{MODEL}:1" in stderr or str(stored) in stderr  # the artifact
    assert "sha256" in stderr or "bytes" in stderr
    assert "refusing to load it" in stderr
    assert not is_listening(port)


def test_a_fixed_version_whose_artifact_was_changed_is_refused_naming_it(
    project: Project, fitted: Fitted
) -> None:
    version = project.register(fitted)
    with project.client() as client:
        stored = client.artifacts.path_for(version.artifact_sha256)
    content = bytearray(stored.read_bytes())
    content[100] ^= 0x01
    stored.chmod(0o644)
    stored.write_bytes(bytes(content))
    port = free_port()
    code, stderr = serve_and_fail(project, f"{MODEL}:1", "--port", str(port))
    assert code != 0, stderr
    assert f"{MODEL}:1" in stderr and "sha256" in stderr
    assert not is_listening(port)


def test_an_unknown_environment_exits_8_naming_the_chain(project: Project) -> None:
    port = free_port()
    code, stderr = serve_and_fail(project, "--env", "production", "--port", str(port))
    assert code == SERVER_START_ERROR, stderr
    assert "unknown environment 'production'" in stderr
    assert "dev -> staging -> prod" in stderr  # says which environments there are
    assert not is_listening(port)


@pytest.mark.parametrize("reference", ["nope:1", "nope", "nope@dev"])
def test_an_unknown_model_exits_8_naming_it(project: Project, reference: str) -> None:
    port = free_port()
    code, stderr = serve_and_fail(project, reference, "--port", str(port))
    assert code == SERVER_START_ERROR, stderr
    assert "cannot serve nope" in stderr and "'nope'" in stderr
    assert not is_listening(port)


def test_a_version_the_model_does_not_have_exits_8_naming_it(
    project: Project, fitted: Fitted
) -> None:
    project.register(fitted)
    code, stderr = serve_and_fail(project, f"{MODEL}:9", "--port", str(free_port()))
    assert code == SERVER_START_ERROR, stderr
    assert f"cannot serve {MODEL}:9" in stderr


def test_the_address_is_printed_once_the_server_answers(project: Project, fitted: Fitted) -> None:
    project.register(fitted)
    with serving(project, "--env", "dev") as server:
        assert f"serving dev on http://127.0.0.1:{server.port} with 1 worker" in server.stderr


def test_nothing_to_serve_is_a_clear_error(project: Project) -> None:
    code, stderr = serve_and_fail(project, "--port", str(free_port()))
    assert code == SERVER_START_ERROR, stderr
    assert "nothing to serve" in stderr


# -- --wait -----------------------------------------------------------------------------------


def test_wait_starts_not_ready_and_serves_the_version_promoted_later(
    project: Project, fitted: Fitted
) -> None:
    project.register(fitted)
    _, X = fitted
    rows = records(X.iloc[:3])
    with serving(project, "--env", "staging", "--wait") as server, Http(server.port) as http_:
        waiting = poll(http_, "/ready", 503, 1)
        assert waiting["ready"] is False
        assert waiting["environment"] == "staging"
        assert waiting["models"] == {}
        refused = http_.post(f"/v1/models/{MODEL}/predict", {"inputs": rows})
        assert refused.status == 404 and refused.json()["field"] == "model"

        with project.client() as client:
            client.promote(f"{MODEL}:1", to="staging", reason="test")
        promoted = time.monotonic()
        ready = poll(http_, "/ready", 200, 5)
        assert time.monotonic() - promoted < 5
        assert ready["ready"] is True
        assert ready["models"][MODEL]["version"] == 1
        assert ready["models"][MODEL]["predictor"] in ("compiled-linear", "onnxruntime")

        answered = http_.post(f"/v1/models/{MODEL}/predict", {"inputs": rows})
        assert answered.status == 200, answered.text
        assert answered.json()["version"] == 1 and answered.json()["environment"] == "staging"
        assert answered.headers["x-model-version"] == "1"
        assert http_.post("/invocations", {"dataframe_records": rows}).status == 200
        # The version now answered with is also what /metrics says is loaded.
        loaded = {
            tuple(sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(http_.get("/metrics").text)
            for sample in family.samples
            if sample.name == "modelrail_model_loaded_version"
        }
        assert loaded == {(("environment", "staging"), ("model", MODEL)): 1.0}


def test_serve_stops_on_sigterm_and_frees_the_port(project: Project, fitted: Fitted) -> None:
    project.register(fitted)
    with serving(project, "--env", "dev") as server:
        server.process.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then re-raises the signal: killed by SIGTERM, or exit 0.
        assert server.process.wait(timeout=10) in (0, -signal.SIGTERM)
        assert "Traceback" not in server.stderr
    assert not is_listening(server.port)


def test_wait_for_a_named_model_lists_it_until_it_is_promoted(
    project: Project, fitted: Fitted
) -> None:
    project.register(fitted)
    with (
        serving(project, "--env", "staging", "--model", MODEL, "--wait") as server,
        Http(server.port) as http_,
    ):
        waiting = poll(http_, "/ready", 503, 1)
        assert waiting["waiting_for"] == [MODEL]
        assert waiting["ready"] is False
        with project.client() as client:
            client.promote(f"{MODEL}:1", to="staging")
        ready = poll(http_, "/ready", 200, 5)
        assert ready["waiting_for"] == []
        assert ready["models"][MODEL]["version"] == 1
        assert ready["models"][MODEL]["predictor"] in ("compiled-linear", "onnxruntime")

"""Hot swap under load: 20 promotions while clients keep sending requests.

No request fails, every answer comes from a version the environment held at
that moment (allowing the 2 s the server has to switch), and each promotion is
picked up within 2 s.
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings

# The load threads' http.client connections may leave a socket to the garbage
# collector when the server ends a keep-alive connection; that is the test client's
# hygiene, not the server's behaviour, so it must not fail these tests.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)

SWAPS = 20
SWAP_WINDOW_S = 2.0
POLICY = """
[environments]
chain = ["dev", "staging"]

[environments.staging]
smoke_test = false
signature_compatible = false
approval = false
"""
MODELRAIL = str(Path(sys.executable).with_name("modelrail"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    init_project(tmp_path)
    (tmp_path / "modelrail.toml").write_text(POLICY)
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(50, 4)), columns=["a", "b", "c", "d"])
    with Client(settings=load_settings(cwd=tmp_path, environ={}, create=False)) as client:
        for c in (0.1, 1.0, 10.0):
            model = LogisticRegression(C=c).fit(X, (X["a"] + X["b"] > 0).astype(int))
            with client.start_run("swap") as run:
                run.log_model(model, "swapper", input_example=X[:3])
        client.promote("swapper:1", "staging", reason="start")
    return tmp_path, X


def start_server(
    root: Path, port: int, *extra: str, environ: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    env.update(environ or {})
    log = root / f"serve-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                MODELRAIL,
                "serve",
                "--env",
                "staging",
                "--port",
                str(port),
                "--poll-interval",
                "0.1",
                *extra,
            ],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError as exc:
            if process.poll() is not None:
                process.wait()
                raise AssertionError(log.read_text()) from exc
            time.sleep(0.1)
    stop_server(process)
    raise AssertionError(f"server did not start: {log.read_text()}")


def call(port: int, method: str, path: str, body: str | None = None) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body, {"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def stop_server(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


@pytest.fixture
def server(project: tuple[Path, pd.DataFrame]) -> Iterator[tuple[Path, pd.DataFrame, int]]:
    root, X = project
    port = free_port()
    process = start_server(root, port)
    yield root, X, port
    stop_server(process)


def test_twenty_swaps_under_load_lose_no_request_and_never_answer_from_a_stale_version(
    server: tuple[Path, pd.DataFrame, int],
) -> None:
    root, X, port = server
    body = json.dumps({"inputs": X[:2].to_dict(orient="records")})
    answers: list[tuple[float, float, int, int]] = []  # sent, received, status, version
    stop = threading.Event()
    lock = threading.Lock()

    def load() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        sent_count = 0
        give_up = time.monotonic() + 90  # bounded even if the main thread stalls
        while not stop.is_set() and sent_count < 500_000 and time.monotonic() < give_up:
            sent = time.monotonic()
            try:
                connection.request(
                    "POST",
                    "/v1/models/swapper/predict",
                    body,
                    {"content-type": "application/json"},
                )
                response = connection.getresponse()
                payload = json.loads(response.read())
                if response.will_close:
                    connection.close()
                result = (sent, time.monotonic(), response.status, int(payload.get("version", -1)))
            except (OSError, http.client.HTTPException):
                result = (sent, time.monotonic(), 0, -1)
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            with lock:
                answers.append(result)
            sent_count += 1
        connection.close()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    held: list[tuple[float, int]] = [(0.0, 1)]  # (from when, version)
    pickup: list[float] = []
    settings = load_settings(cwd=root, environ={}, create=False)
    with Client(settings=settings) as client:
        order = [2, 3, 1]
        for swap in range(SWAPS):
            target = order[swap % 3]
            time.sleep(0.3)
            client.promote(f"swapper:{target}", "staging", reason=f"swap {swap}")
            promoted = time.monotonic()
            held.append((promoted, target))
            deadline = promoted + SWAP_WINDOW_S
            while time.monotonic() < deadline:
                with lock:
                    recent = [a for a in answers[-50:] if a[0] >= promoted and a[3] == target]
                if recent:
                    pickup.append(recent[0][1] - promoted)
                    break
                time.sleep(0.02)
            else:
                pickup.append(float("inf"))
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    gc.collect()  # release any dropped client socket inside this test's warning filter

    assert len(answers) > 500
    failed = [a for a in answers if a[2] != 200]
    assert failed == [], f"{len(failed)} failed requests"
    for sent, received, _, version in answers:
        # Versions the environment held at any time in [sent - swap window, received].
        allowed = {v for start, v in held if start <= received}
        holders_before = [v for start, v in held if start <= sent - SWAP_WINDOW_S]
        window = {v for start, v in held if sent - SWAP_WINDOW_S < start <= received}
        allowed = window | set(holders_before[-1:])
        assert version in allowed, (sent, received, version, held)
    assert max(pickup) <= SWAP_WINDOW_S, " ".join(f"{p:.3f}" for p in pickup)


def _ready(port: int) -> tuple[int, dict[str, Any]]:
    return call(port, "GET", "/ready")


def _answering_version(port: int, X: pd.DataFrame) -> int:
    body = json.dumps({"inputs": X[:1].to_dict(orient="records")})
    status, document = call(port, "POST", "/v1/models/swapper/predict", body)
    assert status == 200, document
    return int(document["version"])


def _until(check: Any, what: str, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout_s} s: {last}")


def test_a_version_that_failed_to_load_is_retried_and_cleared(
    project: tuple[Path, pd.DataFrame],
) -> None:
    """damage -> rollback -> promote again -> restore: /ready and the answering version follow
    what the environment holds at each step, without restarting the server."""
    root, X = project
    # The server reads its own copy of the artifacts, so the promotions (which verify the
    # artifact) see good files while the server sees a damaged one, as on a server with a
    # damaged disk or cache.
    served_artifacts = root / "served-artifacts"
    shutil.copytree(root / ".modelrail" / "artifacts", served_artifacts)
    settings = load_settings(cwd=root, environ={}, create=False)
    with Client(settings=settings) as client:
        broken = client.get_model_version("swapper:2")
    path = served_artifacts / "sha256" / broken.artifact_sha256[:2] / broken.artifact_sha256[2:]
    good = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(good[:-10] + b"0123456789")  # same size, other bytes
    port = free_port()
    process = start_server(root, port, environ={"MODELRAIL_ARTIFACTS": str(served_artifacts)})
    try:
        assert _ready(port)[0] == 200 and _answering_version(port, X) == 1

        with Client(settings=settings) as client:
            client.promote("swapper:2", "staging", reason="v2 is damaged on the server")
        status, ready = _until(lambda: (r := _ready(port))[1]["failures"] and r, "refused")
        assert status == 503 and "sha256" in ready["failures"]["swapper"]
        assert _answering_version(port, X) == 1  # still the old, verified version

        with Client(settings=settings) as client:
            client.rollback("swapper", "staging", reason="back to v1")
        status, ready = _until(lambda: (r := _ready(port))[0] == 200 and r, "ready again")
        assert ready["failures"] == {} and ready["models"]["swapper"]["version"] == 1
        assert _answering_version(port, X) == 1

        with Client(settings=settings) as client:
            client.promote("swapper:2", "staging", reason="v2 again, still damaged")
        status, ready = _until(lambda: (r := _ready(port))[1]["failures"] and r, "refused again")
        assert status == 503 and _answering_version(port, X) == 1

        path.write_bytes(good)  # the artifact is restored: picked up by a retry
        status, ready = _until(lambda: (r := _ready(port))[0] == 200 and r, "recovered")
        assert ready["failures"] == {} and ready["models"]["swapper"]["version"] == 2
        assert _answering_version(port, X) == 2
    finally:
        stop_server(process)


def test_two_workers_share_the_port_and_follow_promotions(
    project: tuple[Path, pd.DataFrame],
) -> None:
    root, X = project
    port = free_port()
    process = start_server(root, port, "--workers", "2")
    try:
        body = json.dumps({"inputs": X[:1].to_dict(orient="records")})

        def versions(count: int) -> list[int]:
            seen = []
            for _ in range(count):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request(
                    "POST", "/v1/models/swapper/predict", body, {"content-type": "application/json"}
                )
                response = connection.getresponse()
                assert response.status == 200
                seen.append(int(response.getheader("x-model-version") or 0))
                connection.close()
            return seen

        assert set(versions(40)) == {1}
        with Client(settings=load_settings(cwd=root, environ={}, create=False)) as client:
            client.promote("swapper:3", "staging", reason="to both workers")
        time.sleep(SWAP_WINDOW_S)
        assert set(versions(40)) == {3}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        connection.close()
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("modelrail_requests_total{") and 'status="200"' in line
        )
        assert counted == 80  # both workers' counts, whichever answered the scrape
    finally:
        stop_server(process)

"""`modelrail docker build` end to end against a real Docker daemon: build, run, predict.

Runs when MODELRAIL_TEST_DOCKER_HOST names a daemon (``tools/docker_test_env.sh`` starts one and
prints it) that holds the base image MODELRAIL_TEST_DOCKER_BASE_IMAGE (the script builds
``modelrail-test-base:bookworm``, a stand-in for python:3.11-slim when Docker Hub is out of
reach). Skipped otherwise; with MODELRAIL_TEST_REQUIRE_DOCKER=1 it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.test_container import MODELRAIL, _env, _project

DOCKER_HOST = os.environ.get("MODELRAIL_TEST_DOCKER_HOST")
REQUIRE_DOCKER = os.environ.get("MODELRAIL_TEST_REQUIRE_DOCKER") == "1"
BASE_IMAGE = os.environ.get("MODELRAIL_TEST_DOCKER_BASE_IMAGE", "modelrail-test-base:bookworm")
BUILD_SECONDS = 900  # a cold build downloads numpy, pandas, pyarrow, scipy, scikit-learn ...
START_SECONDS = 120

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_SECONDS + 2 * START_SECONDS + 120)]


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE_DOCKER:
        pytest.fail(f"MODELRAIL_TEST_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(f"{reason}: run tools/docker_test_env.sh and set MODELRAIL_TEST_DOCKER_HOST")


@pytest.fixture
def docker_env(tmp_path: Path) -> dict[str, str]:
    """The environment for docker and modelrail commands that reach the test daemon."""
    if not DOCKER_HOST:
        _unavailable("MODELRAIL_TEST_DOCKER_HOST is unset")
    if shutil.which("docker") is None:
        _unavailable("there is no docker CLI on PATH")
    env = _env() | {
        "DOCKER_HOST": DOCKER_HOST,
        "DOCKER_BUILDKIT": "0",  # the classic builder: no buildx plugin needed
        "TMPDIR": str(tmp_path),  # the CLI's build context folder lands under tmp_path
    }
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            env=env, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        _unavailable(f"the Docker daemon at {DOCKER_HOST} did not answer within 30 s")
    if info.returncode != 0:
        _unavailable(f"the Docker daemon at {DOCKER_HOST} is unreachable: {info.stderr.strip()}")
    base = _docker(env, "image", "inspect", BASE_IMAGE, check=False)
    if base.returncode != 0:
        _unavailable(f"the daemon at {DOCKER_HOST} has no base image {BASE_IMAGE}")
    return env


def _docker(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed (exit {done.returncode}): {done.stderr}")
    return done


@pytest.fixture
def names(docker_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A fresh image tag and container name, both removed afterwards with build leftovers."""
    suffix = uuid.uuid4().hex[:10]
    tag, container = f"modelrail-test-image-{suffix}:1", f"modelrail-test-{suffix}"
    yield tag, container
    _docker(docker_env, "rm", "--force", "--volumes", container, check=False)
    _docker(docker_env, "rmi", "--force", tag, check=False)
    # A failed classic build leaves its last container and untagged layers behind. The base image
    # is tagged, so it stays cached.
    _docker(docker_env, "container", "prune", "--force", check=False)
    _docker(docker_env, "image", "prune", "--force", check=False)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def test_the_built_image_serves_the_model_healthy_and_not_as_root(
    tmp_path: Path, docker_env: dict[str, str], names: tuple[str, str]
) -> None:
    tag, container = names
    X, model = _project(tmp_path)

    started = time.monotonic()
    built = subprocess.run(
        [MODELRAIL, "docker", "build", "imaged:1", "-t", tag, "--base-image", BASE_IMAGE],
        cwd=tmp_path, env=docker_env, capture_output=True, text=True, timeout=BUILD_SECONDS,
    )  # fmt: skip
    output = built.stdout[-4000:] + built.stderr[-4000:]
    assert built.returncode == 0, output
    assert f"built image {tag}" in built.stdout, output
    print(f"modelrail docker build took {time.monotonic() - started:.0f} s")
    _docker(docker_env, "image", "inspect", tag)

    _docker(docker_env, "run", "--detach", "--name", container, "--publish", "127.0.0.1::8080", tag)
    port = _docker(docker_env, "port", container, "8080/tcp").stdout.split()[0].rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"

    def state() -> dict[str, Any]:
        inspected = _docker(docker_env, "inspect", "--format", "{{json .State}}", container)
        answer: dict[str, Any] = json.loads(inspected.stdout)
        return answer

    def logs() -> str:
        done = _docker(docker_env, "logs", "--tail", "50", container, check=False)
        return done.stdout + done.stderr

    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            _get(f"{base}/health")
            break
        except OSError:
            if not state()["Running"]:
                pytest.fail(f"the container stopped: {state()}\n{logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no answer on {base}/health within {START_SECONDS} s\n{logs()}")
            time.sleep(0.5)

    request = urllib.request.Request(
        f"{base}/v1/models/imaged/predict",
        data=json.dumps({"inputs": X[:10].to_dict(orient="records")}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["version"] == 1
    assert answer["predictions"] == model.predict(X[:10]).tolist()

    uid = _docker(docker_env, "exec", container, "id", "-u").stdout.strip()
    assert uid == "10001", f"the server runs as uid {uid}, not as the modelrail user"

    deadline = time.monotonic() + START_SECONDS  # the HEALTHCHECK probes every 10 s
    while (health := state().get("Health") or {}).get("Status") != "healthy":
        if time.monotonic() > deadline:
            pytest.fail(f"the container is not healthy after {START_SECONDS} s: {health}")
        time.sleep(1)

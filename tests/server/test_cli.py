"""``modelrail server`` as a process, and what a bug looks like from outside."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from tests.server.conftest import HOST, Team

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def test_modelrail_server_serves_the_store_it_is_given(tmp_path: Path) -> None:
    init_project(tmp_path)
    store = f"sqlite:///{tmp_path / '.modelrail' / 'modelrail.db'}"
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(store_url=store, settings=settings, user="admin") as client:
        client.add_user("alice", ["member"])
        _, secret = client.create_token("alice")
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    process = subprocess.Popen(
        [MODELRAIL, "server", "--store", store, "--port", str(port)],
        cwd="/",
        env={**environ, "MODELRAIL_USER": "mallory", "NO_COLOR": "1", "COLUMNS": "400"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        announced = process.stdout.readline()
        assert f"http://{HOST}:{port}" in announced
        deadline = time.monotonic() + 15
        while True:
            try:
                conn = http.client.HTTPConnection(HOST, port, timeout=5)
                conn.request("GET", "/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
                reply = conn.getresponse()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        assert reply.status == 200
        assert json.loads(reply.read())["name"] == "alice"
        conn.close()
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    assert secret not in announced + errors


def test_a_bug_answers_500_as_json_without_a_traceback(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("boom: internal detail")

    monkeypatch.setattr(team.client, "list_models", broken)
    reply = team.get("/api/v1/models", "mia")
    assert reply.status == 500
    assert reply.json() == {"error": "internal server error", "field": None}

"""``modelrail serve --env ENV`` signed in to a team server: it loads what the server says the
environment holds (files sha256-checked), swaps to a newly promoted version as soon as the
server tells it (a long-poll, not the board read over and over), and with ``--auth`` checks
callers' tokens with the server. It needs no store of its own.

Users (conftest): vic viewer, mia member, sam approver in staging, ada admin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import HOST, MODEL, Team, register
from tests.server.test_cli import free_port
from tests.server.test_remote_client import _laptop
from tests.serving.conftest import Http, wait_until_healthy

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))
ROWS = [{"a": 0.5, "b": 1.0}, {"a": 3.0, "b": 0.0}]


@contextmanager
def serving(team: Team, folder: Path, env: dict[str, str], *args: str) -> Iterator[Http]:
    port = free_port()
    env = {**env, "MODELRAIL_SERVER": f"http://{HOST}:{team.port}"}
    command = [MODELRAIL, "serve", "--env", "staging", "--port", str(port), *args]
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_healthy(port, 60, alive=lambda: process.poll() is None)
        with Http(port) as http:
            yield http
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def _predict(http: Http, token: str | None = None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = {"inputs": ROWS}
    return http.request("POST", f"/v1/models/{MODEL}/predict", json_body=body, headers=headers)


def _served_version(http: Http) -> int:
    reply = _predict(http)
    assert reply.status == 200, reply.body
    return int(reply.json()["version"])


def test_serve_follows_the_server_and_swaps_when_told(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register(team.client)
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    board_reads = 0
    board = team.client.board

    def counted_board() -> Any:
        nonlocal board_reads
        board_reads += 1
        return board()

    team.client.board = counted_board  # type: ignore[method-assign]  # the server's reads
    folder, env = _laptop(tmp_path_factory)
    env["MODELRAIL_TOKEN"] = team.tokens["vic"]
    assert not (folder / ".modelrail").exists()
    with serving(team, folder, env) as http:
        assert _served_version(http) == 1
        reads_before = board_reads
        time.sleep(3)
        assert board_reads - reads_before <= 1  # waiting on the server, not reading the board
        promoted = team.post(
            "/api/v1/promotions", "mia", {"reference": f"{MODEL}:2", "to": "staging"}
        )
        assert promoted.status == 200, promoted.body
        started = time.monotonic()
        while _served_version(http) != 2:
            assert time.monotonic() - started < 10, "serve did not swap to version 2"
            time.sleep(0.1)
        assert time.monotonic() - started < 3  # told at once, not at the end of a wait
    assert not (folder / ".modelrail").exists()


def test_serve_auth_checks_tokens_with_the_server(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    folder, env = _laptop(tmp_path_factory)
    env["MODELRAIL_TOKEN"] = team.tokens["vic"]
    with serving(team, folder, env, "--auth") as http:
        assert _predict(http).status == 401
        assert _predict(http, "mr_" + "x" * 43).status == 401
        allowed = _predict(http, team.tokens["sam"])
        assert allowed.status == 200 and len(allowed.json()["predictions"]) == 2
        refused = _predict(http, team.tokens["ann"])  # an approver in prod only
        assert refused.status == 403 and b"staging" in refused.body


def test_serve_with_workers_follows_the_server_too(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    folder, env = _laptop(tmp_path_factory)
    env["MODELRAIL_TOKEN"] = team.tokens["vic"]
    with serving(team, folder, env, "--workers", "2") as http:
        assert _served_version(http) == 1
        assert "Traceback" not in json.dumps(_predict(http).json())
    assert os.path.isdir(folder)


def test_serve_shadows_through_the_server_and_the_report_reads_it(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    register(team.client)
    register(team.client)  # version 2 in dev, the shadow
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    folder, env = _laptop(tmp_path_factory)
    env["MODELRAIL_TOKEN"] = team.tokens["mia"]  # a member: adds shadow totals (log)
    with serving(team, folder, env, "--shadow", "dev") as http:
        for _ in range(5):
            assert _served_version(http) == 1
        started = time.monotonic()
        while not team.client.shadow_totals(MODEL):
            assert time.monotonic() - started < 15, "no shadow totals reached the server"
            time.sleep(0.2)
    (totals,) = team.client.shadow_totals(MODEL)
    assert (totals.live_version, totals.shadow_version) == (1, 2)
    assert totals.requests >= 1 and totals.rows == 2 * totals.requests
    env["MODELRAIL_SERVER"] = f"http://{HOST}:{team.port}"
    report = subprocess.run(
        [MODELRAIL, "shadow", "report", "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)[0]["shadow_version"] == 2
    refused = team.post("/api/v1/shadow", "vic", {"totals": []})
    assert refused.status == 403
    bad = team.post("/api/v1/shadow", "mia", {"totals": [{"model": MODEL}]})
    assert bad.status == 422


def test_the_dashboard_runs_through_the_server_with_no_store_of_its_own(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from tests.server.test_remote_client import _cli

    folder, env = _laptop(tmp_path_factory)
    env["MODELRAIL_SERVER"] = f"http://{HOST}:{team.port}"
    env["MODELRAIL_TOKEN"] = team.tokens["vic"]
    proxied = ["ui", "--proxy-user-header", "X-Forwarded-User", "--trusted-proxy", "127.0.0.1"]
    code, out = _cli(proxied, folder, env)
    assert code == 2 and "each person signs in with their own token" in out, out
    port = free_port()
    process = subprocess.Popen(
        [MODELRAIL, "ui", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_healthy(port, 60, alive=lambda: process.poll() is None)
        with Http(port) as http:
            first = http.get("/")
            assert first.status == 303 and first.headers["location"].startswith("/login")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert "through the team server" in out, (out, err)
    assert not (folder / ".modelrail").exists()  # no local store opened

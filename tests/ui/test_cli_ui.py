"""``modelrail ui`` as a user runs it: a real process serving the project's store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelrail.serving.server import bind
from tests.ui.conftest import HOST, MODEL, Seeded, UiServer

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))


def environ(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    return {**clean, "COLUMNS": "200", "NO_COLOR": "1", **extra}


def free_port() -> int:
    sock = bind(HOST, 0)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def test_ui_serves_the_project_and_needs_the_token_for_changes(seeded: Seeded) -> None:
    port = free_port()
    process = subprocess.Popen(
        [MODELRAIL, "ui", "--port", str(port), "--public-name", "dash.test"],
        cwd=seeded.root,
        env=environ(MODELRAIL_UI_TOKEN="s3cret", MODELRAIL_USER="dora"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = UiServer(port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if server.get("/health").status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"modelrail ui did not start: {process.communicate(timeout=5)}")
            time.sleep(0.1)
        tracker = server.get("/")
        assert tracker.status == 200
        assert tracker.count("tracker-row") == 6
        assert "acting as <strong>dora</strong>" in tracker.text
        refused = server.post(f"/models/{MODEL}/rollback", {"env": "dev"})
        assert refused.status == 401
        bearer = {"Authorization": "Bearer s3cret"}
        assert server.get(f"/models/{MODEL}/rollback?env=dev", headers=bearer).status == 200
        assert server.get("/", headers={"Host": f"dash.test:{port}"}).status == 200
        assert server.get("/", headers={"Host": f"evil.example:{port}"}).status == 400
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert f"modelrail dashboard on http://127.0.0.1:{port}" in out
    assert "changes need the token" in out
    assert "s3cret" not in out + err


def test_a_port_in_use_exits_8_with_one_line(seeded: Seeded) -> None:
    taken = bind(HOST, 0)
    try:
        port = int(taken.getsockname()[1])
        done = subprocess.run(
            [MODELRAIL, "ui", "--port", str(port)],
            cwd=seeded.root,
            env=environ(),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        taken.close()
    assert done.returncode == 8, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_public_name_exits_2_before_listening(seeded: Seeded) -> None:
    done = subprocess.run(
        [MODELRAIL, "ui", "--port", str(free_port())],
        cwd=seeded.root,
        env=environ(MODELRAIL_UI_PUBLIC_NAME="https://dash.test/path"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "public name 'https://dash.test/path' is not NAME" in done.stderr
    assert "Traceback" not in done.stderr


def test_without_a_project_it_says_what_to_do(tmp_path: Path) -> None:
    done = subprocess.run(
        [MODELRAIL, "ui", "--port", str(free_port())],
        cwd=tmp_path,
        env=environ(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "modelrail init" in done.stderr

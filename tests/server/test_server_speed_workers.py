"""``modelrail server --workers N``: N processes serve one port over one store (SQLite or
PostgreSQL), a token revoked is refused on the next request whichever process answers it, and
SIGTERM stops them all."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from modelrail.client import Client
from modelrail.config import load_settings
from tests.server.conftest import HOST
from tests.server.test_cli import MODELRAIL, free_port

REQUESTS = 24  # each on a new connection, so the workers take turns accepting them
REFUSED = 8  # fewer than the failed sign-ins a worker takes before it throttles (10)


def _whoami(port: int, secret: str) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
        reply = conn.getresponse()
        if reply.status == 200:
            assert json.loads(reply.read())["name"] == "alice"
        return reply.status
    finally:
        conn.close()


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_workers_share_the_port_refuse_a_revoked_token_and_stop_together(
    store_url: str, tmp_path: Path
) -> None:
    settings = load_settings(cwd=tmp_path, environ={}, create=False)

    def store() -> Client:
        return Client(store_url=store_url, settings=settings)

    with store() as client:
        token, secret = client.create_token(client.add_user("alice", ["member"]).name)
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    process = subprocess.Popen(
        [MODELRAIL, "server", "--store", store_url, "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env={**environ, "NO_COLOR": "1", "COLUMNS": "400"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its workers too, to stop them all if the test fails
    )
    try:
        assert process.stdout is not None
        announced = process.stdout.readline()
        assert f"http://{HOST}:{port}" in announced and "2 worker processes" in announced
        deadline = time.monotonic() + 20
        while True:
            try:
                assert _whoami(port, secret) == 200
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        assert len(_children(process.pid)) == 2
        assert [_whoami(port, secret) for _ in range(REQUESTS)] == [200] * REQUESTS
        with store() as client:
            client.revoke_token(token.id)
        assert [_whoami(port, secret) for _ in range(REFUSED)] == [401] * REFUSED
        workers = _children(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        _, errors = process.communicate(timeout=30)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert secret not in announced + errors

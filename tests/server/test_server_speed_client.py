"""The remote client's kept connections write a request's head and body in one go (one
segment, one wake-up of the server, instead of two), and the server reads the same request."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from modelrail.remote.keepalive import KeptConnections
from tests.server.conftest import HOST, TIMEOUT_S, Team


def test_a_request_with_a_body_is_written_at_once_and_arrives_whole(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    send = http.client.HTTPConnection.send

    def counted(self: http.client.HTTPConnection, data: Any) -> None:
        writes.append(bytes(data))
        send(self, data)

    monkeypatch.setattr(http.client.HTTPConnection, "send", counted)
    kept = KeptConnections(f"http://{HOST}:{team.port}", TIMEOUT_S)
    try:
        name = "one-write-" + "x" * 2000  # a body larger than one small buffer
        headers = {
            "Authorization": f"Bearer {team.tokens['mia']}",
            "Content-Type": "application/json",
        }
        body = json.dumps({"name": name}).encode()
        for _ in range(2):  # a new connection, then the kept one
            reply = kept.send("POST", "/api/v1/experiments", body, headers)
            assert reply.status == 200, reply.body
            assert json.loads(reply.body)["name"] == name
        assert len(writes) == 2
        assert all(w.startswith(b"POST /api/v1/experiments ") for w in writes)
        assert all(w.endswith(b"\r\n\r\n" + body) for w in writes)
        assert [e.name for e in team.client.experiments()].count(name) == 1
        reply = kept.send("GET", "/api/v1/whoami", None, headers)
        assert reply.status == 200 and json.loads(reply.body)["name"] == "mia"
    finally:
        kept.close()

"""Fixtures of the team server tests: a project with users, tokens and a small model, and
the server itself on 127.0.0.1 (uvicorn on a background thread, started and always stopped
here). Every request goes over a real TCP connection with ``http.client``; every wait is
bounded. ``MODELRAIL_USER`` is set to ``mallory`` for the server's client, so a history row
naming anyone else shows the server recorded the signed-in user."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import uvicorn
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import ModelVersion
from modelrail.server import FailureThrottle, build_app
from modelrail.serving.server import bind

HOST = "127.0.0.1"
TIMEOUT_S = 10.0
MODEL = "tiny"
# name -> roles; one user per kind of grant the matrix tests.
USERS = {
    "vic": ["viewer"],
    "mia": ["member"],
    "max": ["member"],
    "ann": ["approver@prod"],
    "sam": ["approver@staging"],
    "ada": ["admin"],
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Team:
    """The server, the client behind it, and a token per user."""

    port: int
    client: Client
    clock: FakeClock
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        token: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        secret = token if token is not None else (self.tokens[user] if user else None)
        if secret is not None:
            sent["Authorization"] = f"Bearer {secret}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(HOST, self.port, timeout=TIMEOUT_S)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            return Reply(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def get(self, path: str, user: str | None = None, **kwargs: Any) -> Reply:
        return self.request("GET", path, user=user, **kwargs)

    def post(self, path: str, user: str | None = None, body: Any = None, **kwargs: Any) -> Reply:
        return self.request(
            "POST", path, user=user, body=body if body is not None else {}, **kwargs
        )


def register(client: Client) -> ModelVersion:
    """A new version of ``tiny`` in dev (the chain's first environment)."""
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    return client.register_model(model, MODEL, input_example=X[:2])


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread


def _wait_until_up(port: int, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if not thread.is_alive():
            pytest.fail("the team server stopped before answering /health")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
            try:
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"the team server on port {port} did not answer /health within 15 s")


def start_team(
    store_url: str, project: Path, *, max_upload_bytes: int | None = None
) -> Iterator[Team]:
    init_project(project)
    settings = load_settings(cwd=project, environ={"MODELRAIL_USER": "mallory"}, create=False)
    with Client(store_url=store_url, settings=settings) as client:
        assert client.user == "mallory"
        for name, roles in USERS.items():
            client.add_user(name, roles)
        clock = FakeClock()
        app = build_app(
            client, throttle=FailureThrottle(clock=clock), max_upload_bytes=max_upload_bytes
        )
        sock = bind(HOST, 0)
        port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            app, lifespan="off", access_log=False, log_config=None, log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"team-{port}", daemon=True
        )
        thread.start()
        team = Team(port, client, clock)
        for name in USERS:
            token, secret = client.create_token(name, label="tests")
            team.tokens[name] = secret
            team.token_ids[name] = token.id
        try:
            _wait_until_up(port, thread)
            yield team
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            sock.close()
            assert not thread.is_alive(), "the uvicorn thread did not stop"


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    """The server in front of a SQLite store."""
    init_project(tmp_path)
    yield from start_team(f"sqlite:///{tmp_path / '.modelrail' / 'modelrail.db'}", tmp_path)


@pytest.fixture
def any_team(store_url: str, tmp_path: Path) -> Iterator[Team]:
    """The server in front of SQLite, then of PostgreSQL (when configured)."""
    yield from start_team(store_url, tmp_path)

"""Single sign-on behind a reverse proxy on the team server: the proxy's user header signs a
request in only when the TCP peer is a trusted proxy (127.0.0.1 here; a client bound to
127.0.0.2 is anyone else), names a user of the store who is not disabled, and a header
naming nobody is a failed sign-in counted against the browser the proxy reports."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import ConfigError
from modelrail.server import FailureThrottle, build_app
from modelrail.server.auth import TrustedProxy
from modelrail.serving.server import bind
from tests.server.conftest import HOST, MODEL, FakeClock, Reply, Team, register

OTHER = "127.0.0.2"  # another loopback address: a peer that is not the trusted proxy
HEADER = "X-Forwarded-User"
TIMEOUT_S = 10.0
USERS = {"mia": ["member"], "ann": ["approver@prod"], "max": ["member"]}
MODELRAIL = str(Path(sys.executable).with_name("modelrail"))


def fetch(
    port: int,
    method: str,
    path: str,
    *,
    source: str = HOST,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    form: dict[str, str] | list[tuple[str, str]] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request over a connection whose client end is bound to ``source``; ``form`` is
    sent urlencoded."""
    sent = dict(headers or {})
    if form is not None:
        body = urlencode(form).encode()
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_S, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@dataclass
class Proxied:
    """The team server trusting 127.0.0.1 as its proxy, and a token per user."""

    port: int
    client: Client
    clock: FakeClock
    tokens: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, *, source: str = HOST, **headers: str) -> Reply:
        return Reply(*fetch(self.port, "GET", path, source=source, headers=_named(headers)))

    def post(self, path: str, body: Any, *, source: str = HOST, **headers: str) -> Reply:
        sent = {"Content-Type": "application/json", **_named(headers)}
        data = json.dumps(body).encode()
        return Reply(*fetch(self.port, "POST", path, source=source, headers=sent, body=data))


def _named(headers: dict[str, str]) -> dict[str, str]:
    """Keyword arguments as header names: ``x_forwarded_user`` is ``X-Forwarded-User``."""
    return {"-".join(p.capitalize() for p in k.split("_")): v for k, v in headers.items()}


@contextmanager
def serve(app: Any) -> Iterator[int]:
    """``app`` under uvicorn on 127.0.0.1, seeing each connection's own peer address."""
    sock = bind(HOST, 0)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until_up(port, thread.is_alive)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the uvicorn thread did not stop"


def wait_until_up(port: int, running: Callable[[], bool]) -> None:
    """Until ``/health`` on ``port`` answers 200; fails when ``running()`` turns False."""
    deadline = time.monotonic() + 20
    while True:
        try:
            if fetch(port, "GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or not running():
            pytest.fail(f"the server on port {port} did not start")
        time.sleep(0.05)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={"MODELRAIL_USER": "mallory"}, create=False)
    with Client(settings=settings) as client:
        tokens = {}
        for name, roles in USERS.items():
            tokens[name] = client.create_token(client.add_user(name, roles).name)[1]
        register(client)
        clock = FakeClock()
        proxy = TrustedProxy.from_options(HEADER, ["127.0.0.1"])
        app = build_app(client, throttle=FailureThrottle(clock=clock, proxy=proxy))
        with serve(app) as port:
            yield Proxied(port, client, clock, tokens)


def test_the_header_signs_in_from_the_trusted_proxy(proxied: Proxied) -> None:
    reply = proxied.get("/api/v1/whoami", x_forwarded_user="ann")
    assert reply.status == 200, reply.body
    assert reply.json()["name"] == "ann"
    # The header wins over a bearer token the proxy passes on (oauth2-proxy may send one).
    both = proxied.get("/api/v1/whoami", x_forwarded_user="ann", authorization="Bearer idp.jwt")
    assert both.json()["name"] == "ann"


def test_changes_are_recorded_as_the_user_the_proxy_names(proxied: Proxied) -> None:
    done = proxied.post(
        "/api/v1/promotions", {"reference": f"{MODEL}:1", "to": "staging"}, x_forwarded_user="mia"
    )
    assert done.status == 200, done.body
    assert proxied.client.history(MODEL, "staging")[-1].actor == "mia"
    refused = proxied.post(
        "/api/v1/rollbacks", {"model": MODEL, "environment": "staging"}, x_forwarded_user="mia"
    )
    assert refused.status == 403
    assert "mia may not roll back staging" in refused.json()["error"]


def test_the_header_is_ignored_from_an_untrusted_address(proxied: Proxied) -> None:
    alone = proxied.get("/api/v1/whoami", source=OTHER, x_forwarded_user="ann")
    assert alone.status == 401
    assert alone.json()["field"] == "Authorization"  # as if no header: a token is needed
    posing = proxied.get(
        "/api/v1/whoami", source=OTHER, x_forwarded_user="ann", x_forwarded_for="127.0.0.1"
    )
    assert posing.status == 401  # the TCP peer counts, not what it says about itself
    with_token = proxied.get(
        "/api/v1/whoami",
        source=OTHER,
        x_forwarded_user="ann",
        authorization=f"Bearer {proxied.tokens['mia']}",
    )
    assert with_token.status == 200
    assert with_token.json()["name"] == "mia"
    promoted = proxied.post(
        "/api/v1/promotions",
        {"reference": f"{MODEL}:1", "to": "staging"},
        source=OTHER,
        x_forwarded_user="mia",
    )
    assert promoted.status == 401
    assert proxied.client.history(MODEL, "staging") == []


def test_without_a_trusted_proxy_the_header_is_never_read(team: Team) -> None:
    reply = team.get("/api/v1/whoami", headers={HEADER: "ann"})  # from 127.0.0.1
    assert reply.status == 401
    assert reply.json()["field"] == "Authorization"


def test_a_header_naming_nobody_is_refused_and_counted(proxied: Proxied) -> None:
    unknown = proxied.get("/api/v1/whoami", x_forwarded_user="eve@example.org")
    assert unknown.status == 401
    assert unknown.json()["kind"] == "AuthenticationError"
    assert (
        "'eve@example.org' (X-Forwarded-User), but no user of this store"
        in (unknown.json()["error"])
    )
    proxied.client.disable_user("max")
    disabled = proxied.get("/api/v1/whoami", x_forwarded_user="max")
    assert (
        disabled.status == 401
        and "max (X-Forwarded-User), who is disabled" in (disabled.json()["error"])
    )
    # Ten failures from one browser behind the proxy: that browser is throttled...
    browser = {"x_forwarded_for": "198.51.100.7"}
    for _ in range(10):
        assert proxied.get("/api/v1/whoami", x_forwarded_user="eve", **browser).status == 401
    throttled = proxied.get("/api/v1/whoami", x_forwarded_user="ann", **browser)
    assert throttled.status == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    # ...and nobody else behind the same proxy is locked out.
    other = proxied.get("/api/v1/whoami", x_forwarded_user="ann", x_forwarded_for="198.51.100.8")
    assert other.status == 200
    assert proxied.get("/api/v1/whoami", x_forwarded_user="ann").status == 200
    proxied.clock.now += 61
    assert proxied.get("/api/v1/whoami", x_forwarded_user="ann", **browser).status == 200


def test_trusted_proxies_are_addresses_and_networks() -> None:
    proxy = TrustedProxy.from_options(HEADER, ["10.0.0.10", "fd00::/8"])
    assert proxy is not None
    assert proxy.trusts("10.0.0.10") and proxy.trusts("::ffff:10.0.0.10")
    assert proxy.trusts("fd00::5") and not proxy.trusts("10.0.0.11")
    assert not proxy.trusts("unknown") and not proxy.trusts("")


@pytest.mark.parametrize(
    ("header", "proxies", "words"),
    [
        (HEADER, [], "--trusted-proxy is missing"),
        (None, ["10.0.0.10"], "--proxy-user-header is missing"),
        (HEADER, ["10.0.0.300"], "'10.0.0.300' is not an IP address or a network"),
        (HEADER, ["proxy.internal"], "is not an IP address"),
        ("Authorization", ["10.0.0.10"], "is not a header a proxy can name the user in"),
        ("X Forwarded User", ["10.0.0.10"], "is not a header"),
    ],
)
def test_a_half_or_malformed_proxy_configuration_is_refused(
    header: str | None, proxies: list[str], words: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        TrustedProxy.from_options(header, proxies)
    assert words in refused.value.message
    assert TrustedProxy.from_options(None, []) is None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def test_modelrail_server_trusts_the_header_only_from_its_trusted_proxy(tmp_path: Path) -> None:
    init_project(tmp_path)
    store = f"sqlite:///{tmp_path / '.modelrail' / 'modelrail.db'}"
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(store_url=store, settings=settings, user="admin") as client:
        client.add_user("ann", ["approver@prod"])
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    command = [MODELRAIL, "server", "--store", store, "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--proxy-user-header", HEADER, "--trusted-proxy", "127.0.0.1/32"],
        cwd="/",
        env={**environ, "NO_COLOR": "1", "COLUMNS": "400"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(port, lambda: process.poll() is None)
        trusted = fetch(port, "GET", "/api/v1/whoami", headers={HEADER: "ann"})
        assert trusted[0] == 200 and json.loads(trusted[2])["name"] == "ann"
        untrusted = fetch(port, "GET", "/api/v1/whoami", source=OTHER, headers={HEADER: "ann"})
        assert untrusted[0] == 401
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert f"or {HEADER} from 127.0.0.1/32" in " ".join(out.split())

    half = subprocess.run(
        [*command, "--trusted-proxy", "127.0.0.1"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert half.returncode == 2
    assert "--proxy-user-header is missing" in half.stderr and "Traceback" not in half.stderr

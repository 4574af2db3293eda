"""Single sign-on behind a reverse proxy on the dashboard: the proxy's user header signs a
visitor in only on connections from the trusted proxy (127.0.0.1 here; a client bound to
127.0.0.2 is anyone else), forms still need the session's CSRF token, and a header naming
nobody is refused and throttled. Also ``modelrail ui`` as a process on a store with users."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modelrail.server import FailureThrottle
from modelrail.server.auth import TrustedProxy
from modelrail.ui import create_app
from tests.server.test_proxy_sign_in import OTHER, fetch, wait_until_up
from tests.ui.conftest import HOST, Fresh, Reply, UiServer, running_ui
from tests.ui.test_cli_ui import MODELRAIL, environ, free_port
from tests.ui.test_ui_identity import (
    MODEL_PAGE,
    PROMOTE,
    ROLLBACK,
    TeamUi,
    refused,
    sign_in,
    team_project,
)

PROXY = TrustedProxy.from_options("X-Forwarded-User", ["127.0.0.1"])


@pytest.fixture
def team(tmp_path: Path) -> Iterator[TeamUi]:
    yield from team_project(tmp_path)


@dataclass
class Reached(UiServer):
    """The dashboard as reached from ``source``, with ``added`` headers on every request
    (what a proxy in front adds)."""

    source: str = HOST
    added: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {**self.added, **(headers or {})}
        return Reply(*fetch(self.port, method, path, source=self.source, headers=sent, form=form))


def as_user(server: UiServer, name: str, source: str = HOST) -> Reached:
    return Reached(server.port, server.app, source, {"X-Forwarded-User": name})


def test_the_proxy_header_signs_in_from_the_trusted_proxy(team: TeamUi) -> None:
    server = team.serve(proxy=PROXY)
    sign_in(server, team, "max").post(PROMOTE, {"version": "1", "to": "prod"})  # request 1
    ann = as_user(server, "ann").visitor()
    page = ann.get(MODEL_PAGE)
    assert page.status == 200
    assert "signed in as <strong>ann</strong>" in page.text and "(approver in prod)" in page.text
    assert page.count("logout-button") == 0  # the proxy signs in and out
    assert ann.get("/login").count("login-proxy") == 1

    refused(ann.post("/requests/1/approve", {"csrf_token": ""}), 403, "carries no CSRF token")
    approved = ann.post("/requests/1/approve", {"reason": "signed in by the proxy"})
    assert approved.status == 303, approved.text[-600:]
    assert team.history("prod")[-1] == ("approve", "ann", 1)


def test_the_header_is_ignored_from_an_untrusted_address(team: TeamUi) -> None:
    server = team.serve(proxy=PROXY)
    sign_in(server, team, "max").post(PROMOTE, {"version": "1", "to": "prod"})  # request 1
    posing = as_user(server, "ann", source=OTHER)
    reply = posing.get(MODEL_PAGE)
    assert reply.status == 303 and reply.headers["location"].startswith("/login?next=")
    visitor = posing.visitor()
    visitor.get("/login")  # a session and its form token, as a browser would have
    forged = visitor.post("/requests/1/approve", {"reason": "posing as ann"})
    refused(forged, 401, "sign in first")
    spoofed = Reached(server.port, server.app, OTHER, {**posing.added, "X-Forwarded-For": HOST})
    assert spoofed.get(MODEL_PAGE).status == 303
    assert team.fresh.board() == {"dev": 3, "staging": 1}
    # From that address a personal token still signs in, as before.
    assert sign_in(posing, team, "mia").get(MODEL_PAGE).status == 200


def test_without_a_trusted_proxy_the_header_is_never_read(team: TeamUi) -> None:
    server = team.serve()
    assert as_user(server, "ann").get(MODEL_PAGE).status == 303


def test_a_header_naming_nobody_is_refused_and_throttled(team: TeamUi) -> None:
    server = team.serve(proxy=PROXY)
    eve = as_user(server, "eve@example.org")
    unknown = eve.get("/")
    refused(unknown, 401, "&#39;eve@example.org&#39; (X-Forwarded-User), but no user of this")
    with team.fresh.seeded.client() as client:
        client.disable_user("vic")
    refused(as_user(server, "vic").get("/"), 401, "who is disabled")
    for _ in range(8):
        assert eve.get("/").status == 401
    throttled = as_user(server, "ann").get("/")
    refused(throttled, 429, "too many failed sign-ins")
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    team.clock.now += 61
    assert as_user(server, "ann").get("/").status == 200


@pytest.mark.parametrize("proxied", [False, True])
def test_modelrail_ui_on_a_store_with_users(team: TeamUi, proxied: bool) -> None:
    port = free_port()
    options = ["--proxy-user-header", "X-Forwarded-User", "--trusted-proxy", HOST]
    process = subprocess.Popen(
        [MODELRAIL, "ui", "--port", str(port), *(options if proxied else [])],
        cwd=team.fresh.seeded.root,
        env=environ(MODELRAIL_UI_TOKEN="s3cret", MODELRAIL_USER="dora"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = UiServer(port)
    try:
        wait_until_up(port, lambda: process.poll() is None)
        assert server.get("/").status == 303  # signing in first
        mia = sign_in(server, team, "mia", MODEL_PAGE)
        assert "signed in as <strong>mia</strong>" in mia.get(MODEL_PAGE).text
        by_header = as_user(server, "ann").get(MODEL_PAGE)
        assert by_header.status == (200 if proxied else 303)
        assert as_user(server, "ann", source=OTHER).get(MODEL_PAGE).status == 303
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    said = " ".join(out.split())
    assert "each person signs in" in said and "recorded as dora" not in said
    assert ("single sign-on by X-Forwarded-User from 127.0.0.1/32" in said) == proxied
    assert "--token / MODELRAIL_UI_TOKEN is not used" in " ".join(err.split())
    assert "s3cret" not in out + err and team.tokens["mia"] not in out + err


def test_a_store_without_users_refuses_the_header_and_keeps_its_token(fresh: Fresh) -> None:
    app = create_app(fresh.seeded.settings, token="s3cret", throttle=FailureThrottle(proxy=PROXY))
    server = fresh.stack.enter_context(running_ui(app))
    refused(as_user(server, "alice").get("/"), 401, "no user of this store has that name")
    assert server.get("/").status == 200  # without the header: open, as before
    done = server.post(ROLLBACK, {"env": "dev"}, headers={"Authorization": "Bearer s3cret"})
    assert done.status == 303, done.text[-600:]
    assert fresh.board() == {"dev": 2}

"""The dashboard through a team server (``modelrail ui`` on a laptop signed in to one): each
person signs in with their own token, every read and change goes to the server as them (so
the server checks their roles and records them), and a revoked token signs them out at
once. The dashboard never opens a store of its own.

Users (tests/server/conftest.py): vic viewer, mia member, ann approver in prod, ada admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelrail.config import load_settings
from modelrail.ui.server import build_ui_through_server
from tests.server.conftest import HOST, MODEL, Team, register, team

__all__ = ["team"]
from tests.ui.conftest import UiServer, Visitor, running_ui

MODEL_PAGE = f"/models/{MODEL}"
PROMOTE = f"/models/{MODEL}/promote"


@pytest.fixture
def dashboard(
    team: Team, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[UiServer]:
    laptop = tmp_path_factory.mktemp("laptop")
    monkeypatch.setenv("MODELRAIL_TOKEN", team.tokens["vic"])  # who launched it: a viewer
    settings = load_settings(cwd=laptop, environ={}, create=False)
    app = build_ui_through_server(settings, f"http://{HOST}:{team.port}")
    with running_ui(app) as server:
        yield server
    assert not (laptop / ".modelrail").exists()


def _sign_in(dashboard: UiServer, team: Team, name: str) -> Visitor:
    visitor = dashboard.visitor()
    reply = visitor.post("/login", {"token": team.tokens[name], "next": MODEL_PAGE})
    assert reply.status == 303, reply.text[-600:]
    return visitor


def test_people_act_through_the_server_as_themselves(dashboard: UiServer, team: Team) -> None:
    register(team.client)
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    assert dashboard.get(MODEL_PAGE).status == 303  # sign in first
    assert dashboard.visitor().post("/login", {"token": "mr_" + "x" * 43}).status == 401

    mia = _sign_in(dashboard, team, "mia")
    page = mia.get(MODEL_PAGE)
    assert page.status == 200 and "signed in as <strong>mia</strong>" in page.text
    assert mia.get("/").status == 200 and MODEL in mia.get("/models").text
    asked = mia.post(PROMOTE, {"version": "1", "to": "prod", "reason": "ready"})
    assert asked.status == 303, asked.text[-600:]
    refused = mia.post("/requests/1/approve", {"reason": "mine"})
    assert refused.status == 403

    ann = _sign_in(dashboard, team, "ann")
    approved = ann.post("/requests/1/approve", {"reason": "checked"})
    assert approved.status == 303, approved.text[-600:]
    history = [(e.action, e.actor) for e in team.client.history(MODEL, "prod")]
    assert history == [("request", "mia"), ("approve", "ann")]

    team.client.revoke_token(team.token_ids["mia"])
    assert mia.get(MODEL_PAGE).status == 303  # signed out on the next request
    assert ann.get(MODEL_PAGE).status == 200

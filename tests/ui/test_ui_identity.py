"""Signing in to the dashboard of a store with users: a personal API token at /login (wrong
ones refused and throttled), the header naming who is signed in and their roles, every
action offered and done only as the user's roles allow (403 naming the missing permission
for a forged form), the history recording the signed-in user, and a store without users
working as before for its one local user."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from modelrail.server import FailureThrottle
from modelrail.server.auth import TrustedProxy
from modelrail.ui import create_app
from tests.server.conftest import FakeClock
from tests.ui.conftest import MODEL, Fresh, Reply, UiServer, Visitor, running_ui, seed_models

PROMOTE = f"/models/{MODEL}/promote"
ROLLBACK = f"/models/{MODEL}/rollback"
MODEL_PAGE = f"/models/{MODEL}"
# name -> roles: who the tests sign in as.
TEAM = {
    "mia": ["member"],
    "max": ["member", "approver@prod"],
    "ann": ["approver@prod"],
    "vic": ["viewer"],
    "ada": ["admin"],
}
UNKNOWN = "mr_" + "u" * 43


@dataclass
class TeamUi:
    """A project whose store has ``TEAM`` (version 1 of ``MODEL`` in staging, 3 in dev),
    a token per user, and dashboards on it (the throttle's clock moved by the tests)."""

    fresh: Fresh
    stack: ExitStack
    clock: FakeClock = field(default_factory=FakeClock)
    tokens: dict[str, str] = field(default_factory=dict)

    def serve(self, *, proxy: TrustedProxy | None = None, token: str | None = None) -> UiServer:
        throttle = FailureThrottle(clock=self.clock, proxy=proxy)
        app = create_app(self.fresh.seeded.settings, token=token, throttle=throttle)
        return self.stack.enter_context(running_ui(app))

    def history(self, environment: str) -> list[tuple[str, str, int | None]]:
        """(action, actor, version) of each change of ``environment``, oldest first."""
        with self.fresh.seeded.client() as client:
            return [(e.action, e.actor, e.to_version) for e in client.history(MODEL, environment)]


@pytest.fixture
def team(tmp_path: Path) -> Iterator[TeamUi]:
    yield from team_project(tmp_path)


def team_project(tmp_path: Path) -> Iterator[TeamUi]:
    """The ``team`` fixture's project (for other modules' fixtures)."""
    with ExitStack() as stack:
        made = TeamUi(Fresh(seed_models(tmp_path), stack), stack)
        with made.fresh.seeded.client() as client:
            client.promote(f"{MODEL}:1", "staging", reason="first candidate")
            for name, roles in TEAM.items():
                made.tokens[name] = client.create_token(client.add_user(name, roles).name)[1]
        yield made


def sign_in(server: UiServer, team: TeamUi, name: str, next_page: str = "/") -> Visitor:
    visitor = server.visitor()
    reply = visitor.post("/login", {"token": team.tokens[name], "next": next_page})
    assert reply.status == 303, reply.text[-600:]
    assert reply.headers["location"] == next_page
    return visitor


def refused(reply: Reply, status: int, words: str) -> None:
    assert reply.status == status, reply.text[-800:]
    assert words in reply.text, reply.text[-800:]


# -- signing in ---------------------------------------------------------------------------------


def test_a_store_with_users_needs_signing_in_even_to_read(team: TeamUi) -> None:
    server = team.serve()
    for path in ("/", MODEL_PAGE, f"{PROMOTE}?version=1&to=prod", "/batch"):
        reply = server.get(path)
        assert reply.status == 303, path
        assert reply.headers["location"] == "/login?next=" + quote(path, safe="")
        assert MODEL not in reply.text
    login = server.get("/login")
    assert login.status == 200
    assert login.count("login-token") == 1 and "login-name" not in login.text  # no names
    assert "Personal API token" in login.text
    posted = server.visitor().post(ROLLBACK, {"env": "dev"})
    refused(posted, 401, "sign in first")
    assert team.fresh.board() == {"dev": 3, "staging": 1}


def test_signing_in_with_a_token_shows_who_you_are_and_your_roles(team: TeamUi) -> None:
    server = team.serve()
    max_ = server.visitor()
    login = max_.post("/login", {"token": team.tokens["max"], "next": MODEL_PAGE})
    assert login.status == 303 and login.headers["location"] == MODEL_PAGE
    cookie = login.headers["set-cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert team.tokens["max"] not in cookie and team.tokens["max"][3:20] not in cookie

    page = max_.get(MODEL_PAGE)
    assert page.status == 200
    assert re.search(r'data-testid="signed-in-as">signed in as <strong>max</strong>', page.text)
    assert re.search(r'data-testid="roles">\(member, approver in prod\)<', page.text)
    assert page.count("logout-button") == 1

    assert max_.post("/logout").status == 303
    assert max_.get(MODEL_PAGE).status == 303  # signed out: back to /login


def test_a_wrong_token_is_refused_then_the_address_is_throttled(team: TeamUi) -> None:
    server = team.serve()
    visitor = server.visitor()
    for wrong in (UNKNOWN, "", team.tokens["mia"][:-1]):
        reply = visitor.post("/login", {"token": wrong})
        assert reply.status == 401, reply.text[-600:]
        assert "set-cookie" not in reply.headers  # no session for it
        assert UNKNOWN not in reply.text and (not wrong or wrong not in reply.text)
    for _ in range(8):  # the empty one was not counted: 2 + 8 = 10 failures
        assert visitor.post("/login", {"token": UNKNOWN}).status == 401
    throttled = visitor.post("/login", {"token": team.tokens["mia"]})  # even the right one
    refused(throttled, 429, "too many failed sign-ins")
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    bearer = server.get("/", headers={"Authorization": f"Bearer {team.tokens['mia']}"})
    assert bearer.status == 429  # the same address, the same count
    team.clock.now += 61
    assert visitor.post("/login", {"token": team.tokens["mia"]}).status == 303
    assert visitor.get("/").status == 200


def test_a_disabled_users_session_ends_at_once(team: TeamUi) -> None:
    server = team.serve()
    mia = sign_in(server, team, "mia")
    assert mia.get(MODEL_PAGE).status == 200
    with team.fresh.seeded.client() as client:
        client.disable_user("mia")
    assert mia.get(MODEL_PAGE).status == 303
    refused(mia.post("/login", {"token": team.tokens["mia"]}), 401, "disabled")


def test_revoking_the_token_a_session_signed_in_with_ends_it_at_once(team: TeamUi) -> None:
    server = team.serve()
    mia, max_ = sign_in(server, team, "mia"), sign_in(server, team, "max")
    assert mia.get(MODEL_PAGE).status == 200
    with team.fresh.seeded.client() as client:
        (token,) = client.tokens("mia")
        client.revoke_token(token.id)
    assert mia.get(MODEL_PAGE).status == 303  # back to /login on the next request
    refused(mia.post(ROLLBACK, {"env": "dev"}), 401, "sign in first")
    assert max_.get(MODEL_PAGE).status == 200  # others' sessions go on
    refused(mia.post("/login", {"token": team.tokens["mia"]}), 401, "revoked")


def test_a_script_signs_in_with_its_bearer_token_and_needs_no_form_token(team: TeamUi) -> None:
    server = team.serve()
    mia = {"Authorization": f"Bearer {team.tokens['mia']}"}
    assert server.get(MODEL_PAGE, headers=mia).status == 200
    done = server.post(PROMOTE, {"version": "3", "to": "staging"}, headers=mia)
    assert done.status == 303, done.text[-600:]
    assert team.history("staging")[-1] == ("promote", "mia", 3)
    unknown = {"Authorization": f"Bearer {UNKNOWN}"}
    wrong = server.post(ROLLBACK, {"env": "staging"}, headers=unknown)
    refused(wrong, 401, "unknown API token")
    assert team.fresh.board() == {"dev": 3, "staging": 3}


def test_tokens_never_reach_the_logs(team: TeamUi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = team.serve()
    sign_in(server, team, "mia").get(MODEL_PAGE)
    server.visitor().post("/login", {"token": UNKNOWN})
    server.get("/", headers={"Authorization": f"Bearer {team.tokens['ann']}"})
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (team.tokens["mia"], team.tokens["ann"], UNKNOWN):
        assert secret not in logged


# -- what each role is offered and may do --------------------------------------------------------


def test_an_approver_approves_but_the_requester_cannot(team: TeamUi) -> None:
    server = team.serve()
    max_ = sign_in(server, team, "max")  # member and approver in prod
    check = max_.get(f"{PROMOTE}?version=1&to=prod")
    assert 'data-testid="approval-note"' in check.text
    asked = max_.post(PROMOTE, {"version": "1", "to": "prod", "reason": "ready"})
    assert asked.headers["location"] == f"{MODEL_PAGE}?done=request-1"

    own = max_.get(MODEL_PAGE)
    assert own.count("pending-request") == 1
    assert own.count("approve-button") == 0 and own.count("reject-button") == 1
    review = max_.get("/requests/1/approve")
    refused(review, 200, "you (max) made request 1: someone else must approve it")
    assert review.count("confirm-button") == 0
    refused(max_.post("/requests/1/approve"), 403, "needs approval by someone else")
    assert team.fresh.board() == {"dev": 3, "staging": 1}

    ann = sign_in(server, team, "ann", "/requests/1/approve")
    review = ann.get("/requests/1/approve")
    assert "signed in as <strong>ann</strong>" in review.text
    assert review.count("confirm-button") == 1
    approved = ann.post("/requests/1/approve", {"reason": "reviewed"})
    assert approved.status == 303, approved.text[-600:]
    assert team.fresh.board() == {"dev": 3, "staging": 1, "prod": 1}
    assert team.history("prod") == [("request", "max", 1), ("approve", "ann", 1)]
    assert "ann approved and moved" in ann.get(approved.headers["location"]).text


def test_a_member_is_offered_no_approval_and_a_forged_form_is_refused(team: TeamUi) -> None:
    server = team.serve()
    sign_in(server, team, "max").post(PROMOTE, {"version": "1", "to": "prod"})  # request 1
    mia = sign_in(server, team, "mia")
    page = mia.get(MODEL_PAGE)
    assert page.count("pending-request") == 1
    assert page.count("approve-button") == 0 and page.count("reject-button") == 0
    assert page.count("approver-needed") == 1
    assert page.count("rollback-button-dev") == 0  # members do not roll back
    assert page.count("promote-form") == 1  # but they request promotions
    board = mia.get("/models")
    assert board.count("pending-request") == 1 and board.count("approve-button") == 0
    review = mia.get("/requests/1/approve")
    assert review.count("confirm-button") == 0
    assert "mia may not approve promotions into prod (needs the approver role in prod)" in (
        review.text
    )

    # The forms the pages do not offer, sent anyway with mia's own session and form token.
    forged = mia.post("/requests/1/approve", {"reason": "forged"})
    refused(forged, 403, "mia may not approve promotions into prod (needs the approver role in")
    refused(mia.post("/requests/1/reject"), 403, "mia may not approve promotions into prod")
    refused(mia.post(ROLLBACK, {"env": "dev"}), 403, "mia may not roll back dev")
    forced = mia.post(PROMOTE, {"version": "2", "to": "staging", "force": "1", "reason": "x"})
    refused(forced, 403, "mia may not force promotions into staging (needs the admin role)")
    assert team.fresh.board() == {"dev": 3, "staging": 1}
    with team.fresh.seeded.client() as client:
        assert client.approval_request(1).status == "pending"


def test_a_viewer_reads_but_is_offered_nothing_to_change(team: TeamUi) -> None:
    server = team.serve()
    vic = sign_in(server, team, "vic")
    page = vic.get(MODEL_PAGE)
    assert page.status == 200 and "(viewer)" in page.text
    for action in ("promote-form", "rollback-button-dev", "promote-suggestion-prod"):
        assert page.count(action) == 0, action
    check = vic.get(f"{PROMOTE}?version=3&to=staging")
    assert check.count("confirm-button") == 0
    assert "vic may not request promotions into staging (needs the member role" in check.text
    refused(vic.post(PROMOTE, {"version": "3", "to": "staging"}), 403, "vic may not request")
    assert team.fresh.board() == {"dev": 3, "staging": 1}


def test_an_admin_may_force_past_failed_gates_with_a_reason(team: TeamUi) -> None:
    server = team.serve()
    mia = sign_in(server, team, "mia")
    assert mia.get(f"{PROMOTE}?version=2&to=staging").count("force-button") == 0
    ada = sign_in(server, team, "ada")
    check = ada.get(f"{PROMOTE}?version=2&to=staging")
    assert 'data-failed="1"' in check.text and check.count("confirm-button") == 0
    assert check.count("force-button") == 1
    no_reason = ada.post(PROMOTE, {"version": "2", "to": "staging", "force": "1"})
    refused(no_reason, 409, "needs a reason")
    forced = ada.post(PROMOTE, {"version": "2", "to": "staging", "force": "1", "reason": "hotfix"})
    assert forced.status == 303, forced.text[-600:]
    with team.fresh.seeded.client() as client:
        event = client.history(MODEL, "staging")[-1]
    assert (event.actor, event.to_version, event.forced, event.reason) == ("ada", 2, True, "hotfix")


def test_a_form_without_its_csrf_token_is_refused_for_a_signed_in_user(team: TeamUi) -> None:
    server = team.serve()
    ann = sign_in(server, team, "ann")
    ann.get(f"{ROLLBACK}?env=staging")
    bare = server.post(ROLLBACK, {"env": "staging"}, headers={"Cookie": ann.cookie})
    refused(bare, 403, "carries no CSRF token")
    wrong = server.post(
        ROLLBACK, {"env": "staging", "csrf_token": "0" * 64}, headers={"Cookie": ann.cookie}
    )
    refused(wrong, 403, "does not belong to your session")
    assert team.fresh.board() == {"dev": 3, "staging": 1}


def test_the_dashboards_token_does_not_sign_anyone_in_where_there_are_users(team: TeamUi) -> None:
    server = team.serve(token="s3cret")
    refused(server.visitor().post("/login", {"token": "s3cret"}), 401, "unknown API token")
    shared = server.post(ROLLBACK, {"env": "dev"}, headers={"Authorization": "Bearer s3cret"})
    refused(shared, 401, "unknown API token")
    assert team.fresh.board() == {"dev": 3, "staging": 1}


# -- a store without users --------------------------------------------------------------------


def test_without_users_reading_is_open_and_changes_are_the_local_users(fresh: Fresh) -> None:
    server = fresh.serve()
    visitor = server.visitor()
    tracker = visitor.get("/")
    assert tracker.status == 200 and "acting as <strong>alice</strong>" in tracker.text
    assert tracker.count("nav-login") == 0 and tracker.count("signed-in-as") == 0
    login = visitor.get("/login")
    assert login.count("login-nobody") == 1 and login.count("login-form") == 0
    named = visitor.post("/login", {"name": "bob"})
    refused(named, 400, "nobody signs in to this dashboard")
    assert visitor.post(PROMOTE, {"version": "1", "to": "staging"}).status == 303
    with fresh.seeded.client() as client:
        assert client.history(MODEL, "staging")[-1].actor == "alice"

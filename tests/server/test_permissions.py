"""Every role against every change, over HTTP: allowed, or 403 naming the missing permission.

Users (conftest): vic viewer, mia and max members, ann approver in prod, sam approver in
staging, ada admin. The server's client runs as MODELRAIL_USER=mallory, who never appears."""

from __future__ import annotations

import pytest

from tests.server.conftest import MODEL, Team, register

ALL = ("vic", "mia", "ann", "sam", "ada")


def _refused(reply_json: dict[str, object], user: str, action: str, environment: str) -> None:
    assert reply_json["permission"] == {"action": action, "environment": environment}
    assert str(reply_json["error"]).startswith(f"{user} may not")
    assert "needs the" in str(reply_json["error"])


def _last_actor(team: Team) -> str:
    return str(team.client.history(MODEL)[-1].actor)


@pytest.mark.parametrize("user", ALL)
def test_promote_into_staging_needs_the_request_permission(team: Team, user: str) -> None:
    register(team.client)
    reply = team.post("/api/v1/promotions", user, {"reference": f"{MODEL}:1", "to": "staging"})
    if user in ("mia", "ada"):
        assert reply.status == 200, reply.body
        assert reply.json()["event"]["actor"] == user == _last_actor(team)
    else:
        assert reply.status == 403, reply.body
        _refused(reply.json(), user, "request", "staging")
        assert "member role in staging" in reply.json()["error"]


@pytest.mark.parametrize("user", ALL)
def test_promote_into_prod_opens_an_approval_request_for_members_only(
    team: Team, user: str
) -> None:
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    reply = team.post("/api/v1/promotions", user, {"reference": f"{MODEL}:1", "to": "prod"})
    if user in ("mia", "ada"):
        assert reply.status == 200, reply.body
        assert reply.json()["request"]["requested_by"] == user
        assert reply.json()["event"] is None
    else:
        assert reply.status == 403, reply.body
        _refused(reply.json(), user, "request", "prod")
        assert team.client.approval_requests() == []


@pytest.mark.parametrize("user", (*ALL, "max"))
def test_approve_and_reject_need_the_approve_permission_in_the_requests_environment(
    team: Team, user: str
) -> None:
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    first = team.client.promote(f"{MODEL}:1", "prod", actor="mia").request
    assert first is not None
    approved = team.post(f"/api/v1/requests/{first.id}/approve", user, {"reason": "ok"})
    rejected = team.post(f"/api/v1/requests/{first.id}/reject", user)
    if user in ("ann", "ada"):
        assert approved.status == 200, approved.body
        assert approved.json()["event"]["actor"] == user == _last_actor(team)
        assert team.client.approval_request(first.id).decided_by == user
        # Decided already: a conflict with the request's state, not a missing permission.
        assert rejected.status == 409
        assert rejected.json()["kind"] == "ConflictError"
        assert "already approved" in rejected.json()["error"]
        assert "permission" not in rejected.json()
    else:
        for reply in (approved, rejected):
            assert reply.status == 403, reply.body
            _refused(reply.json(), user, "approve", "prod")
        assert team.client.approval_request(first.id).status == "pending"


def test_an_approver_may_not_approve_their_own_request(team: Team) -> None:
    team.client.grant_role("ann", "member", "prod")
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    asked = team.post("/api/v1/promotions", "ann", {"reference": f"{MODEL}:1", "to": "prod"})
    assert asked.status == 200, asked.body
    own = team.post(f"/api/v1/requests/{asked.json()['request']['id']}/approve", "ann")
    assert own.status == 403
    assert "permission" not in own.json()  # allowed by role, refused by four eyes
    assert "someone else" in own.json()["error"]


@pytest.mark.parametrize("user", ALL)
def test_force_needs_the_force_permission_and_a_reason(team: Team, user: str) -> None:
    register(team.client)
    body = {"reference": f"{MODEL}:1", "to": "prod", "force": True}
    without_reason = team.post("/api/v1/promotions", user, body)
    with_reason = team.post("/api/v1/promotions", user, {**body, "reason": "hotfix"})
    if user == "ada":
        assert without_reason.status == 422
        assert without_reason.json()["field"] == "reason"
        assert with_reason.status == 200, with_reason.body
        event = with_reason.json()["event"]
        assert (event["actor"], event["forced"]) == ("ada", True)
    else:
        for reply in (without_reason, with_reason):
            assert reply.status == 403, reply.body
            _refused(reply.json(), user, "force", "prod")
            assert "admin role" in reply.json()["error"]
        assert [h.environment for h in team.client.board()] == ["dev"]


@pytest.mark.parametrize("user", ALL)
def test_rollback_needs_the_rollback_permission_in_the_environment(team: Team, user: str) -> None:
    register(team.client)
    register(team.client)
    team.client.promote(f"{MODEL}:1", "prod", force=True, reason="setup", actor="setup")
    team.client.promote(f"{MODEL}:2", "prod", force=True, reason="setup", actor="setup")
    reply = team.post(
        "/api/v1/rollbacks", user, {"model": MODEL, "environment": "prod", "reason": "slow"}
    )
    if user in ("ann", "ada"):
        assert reply.status == 200, reply.body
        assert (reply.json()["actor"], reply.json()["to_version"]) == (user, 1)
        assert _last_actor(team) == user
    else:
        assert reply.status == 403, reply.body
        _refused(reply.json(), user, "rollback", "prod")


@pytest.mark.parametrize("user", ALL)
def test_every_role_may_read(team: Team, user: str) -> None:
    register(team.client)
    for path in ("/api/v1/models", f"/api/v1/models/{MODEL}/versions", "/api/v1/board"):
        reply = team.get(path, user)
        assert reply.status == 200, (path, reply.body)
        assert reply.json()


def test_a_user_without_a_role_may_not_read(team: Team) -> None:
    team.client.add_user("nobody")
    _, secret = team.client.create_token("nobody")
    reply = team.get("/api/v1/models", token=secret)
    assert reply.status == 403
    _refused(reply.json(), "nobody", "read", None)  # type: ignore[arg-type]

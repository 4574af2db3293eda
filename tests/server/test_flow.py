"""The promotion and approval flow over HTTP, on SQLite and PostgreSQL: every change is
recorded as the signed-in user, never as MODELRAIL_USER (``mallory`` here)."""

from __future__ import annotations

from tests.server.conftest import MODEL, Team, register


def test_promote_request_and_approve_record_the_signed_in_users(any_team: Team) -> None:
    team = any_team
    register(team.client)
    staged = team.post("/api/v1/promotions", "mia", {"reference": f"{MODEL}:1", "to": "staging"})
    assert staged.status == 200, staged.body
    assert staged.json()["event"]["actor"] == "mia"
    asked = team.post(
        "/api/v1/promotions", "mia", {"reference": f"{MODEL}:1", "to": "prod", "reason": "ship"}
    )
    assert asked.status == 200, asked.body
    request = asked.json()["request"]
    assert (request["status"], request["requested_by"]) == ("pending", "mia")
    assert asked.json()["event"] is None
    waiting = team.get("/api/v1/requests", "vic")
    assert [r["id"] for r in waiting.json()] == [request["id"]]

    approved = team.post(f"/api/v1/requests/{request['id']}/approve", "ann", {"reason": "ok"})
    assert approved.status == 200, approved.body
    assert approved.json()["event"]["actor"] == "ann"

    history = team.get(f"/api/v1/history?model={MODEL}", "vic").json()
    actors = [(e["action"], e["environment"], e["actor"]) for e in history]
    assert actors == [
        ("auto", "dev", "mallory"),  # registered by the test's client, not over HTTP
        ("promote", "staging", "mia"),
        ("request", "prod", "mia"),
        ("approve", "prod", "ann"),
    ]
    board = team.get("/api/v1/board", "vic").json()
    assert {(h["environment"], h["version"]) for h in board} == {
        ("dev", 1),
        ("staging", 1),
        ("prod", 1),
    }


def test_the_requester_may_not_approve_their_own_request(any_team: Team) -> None:
    team = any_team
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    asked = team.post("/api/v1/promotions", "ada", {"reference": f"{MODEL}:1", "to": "prod"})
    request_id = asked.json()["request"]["id"]
    own = team.post(f"/api/v1/requests/{request_id}/approve", "ada")
    assert own.status == 403, own.body
    assert "someone else" in own.json()["error"]
    assert team.client.approval_request(request_id).status == "pending"
    rejected = team.post(f"/api/v1/requests/{request_id}/reject", "ann", {"reason": "no"})
    assert rejected.status == 200, rejected.body
    assert (rejected.json()["status"], rejected.json()["decided_by"]) == ("rejected", "ann")


def test_rollback_over_http_records_the_signed_in_user(any_team: Team) -> None:
    team = any_team
    register(team.client)
    register(team.client)
    team.client.promote(f"{MODEL}:1", "staging", actor="setup")
    team.client.promote(f"{MODEL}:2", "staging", actor="setup")
    back = team.post(
        "/api/v1/rollbacks", "sam", {"model": MODEL, "environment": "staging", "reason": "slow"}
    )
    assert back.status == 200, back.body
    assert (back.json()["actor"], back.json()["to_version"]) == ("sam", 1)

"""What the team server's fast paths must keep: a sign-in reads the token, its user and every
role in one statement, afresh on each request (a grant, a revocation or a disabled user
counts on the very next one), and a write into a run finds it by its full id or a unique
prefix, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.server.conftest import Team


def _roles(team: Team, user: str) -> list[dict[str, str | None]]:
    reply = team.get("/api/v1/whoami", user)
    assert reply.status == 200, reply.body
    roles: list[dict[str, str | None]] = reply.json()["roles"]
    return roles


def test_a_sign_in_brings_every_role_in_grant_order_or_none(any_team: Team) -> None:
    client = any_team.client
    client.grant_role("sam", "approver", "prod")
    client.grant_role("sam", "member")
    assert _roles(any_team, "sam") == [
        {"role": "approver", "environment": "staging"},
        {"role": "approver", "environment": "prod"},
        {"role": "member", "environment": None},
    ]
    client.revoke_role("vic", "viewer")
    assert _roles(any_team, "vic") == []
    assert any_team.get("/api/v1/models", "vic").status == 403


def test_grants_revocations_and_disabling_count_on_the_next_request(any_team: Team) -> None:
    client = any_team.client
    experiment = {"name": "next-request"}
    assert any_team.post("/api/v1/experiments", "vic", experiment).status == 403
    client.grant_role("vic", "member")
    assert any_team.post("/api/v1/experiments", "vic", experiment).status == 200
    client.revoke_role("vic", "member")
    assert any_team.post("/api/v1/experiments", "vic", experiment).status == 403
    client.disable_user("vic")
    refused = any_team.get("/api/v1/whoami", "vic")
    assert refused.status == 401 and "disabled" in refused.json()["error"]


def test_a_write_finds_its_run_by_full_id_or_unique_prefix(any_team: Team) -> None:
    experiment = any_team.post("/api/v1/experiments", "mia", {"name": "prefixes"}).json()
    run_id = "cd" * 16
    body = {
        "id": run_id,
        "experiment_id": experiment["id"],
        "name": "prefixed",
        "architecture": None,
        "started_at": 1.0,
        "provenance": "{}",
        "tags": {},
        "components": [],
    }
    assert any_team.post("/api/v1/runs", "mia", body).status == 200
    point = {"key": "loss", "value": 0.5, "timestamp": 10.0}
    for step, named in enumerate((run_id, run_id[:8])):
        sent = {"points": [{**point, "step": step}]}
        reply = any_team.post(f"/api/v1/runs/{named}/metrics", "mia", sent)
        assert reply.status == 200, reply.body
    steps = [p.step for p in any_team.client.metric_history(run_id, "loss")]
    assert steps == [0, 1]
    assert any_team.post(f"/api/v1/runs/{run_id[:8]}/params", "max", {"params": {}}).status == 403
    unknown = any_team.post("/api/v1/runs/ffffffff/metrics", "mia", {"points": []})
    assert unknown.status == 404 and unknown.json()["kind"] == "RunNotFoundError"

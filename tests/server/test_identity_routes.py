"""Users, roles and tokens over the team server: only an admin manages them, as themselves;
a user sees and revokes only their own tokens; the CLI's users and tokens commands work from
a laptop signed in to the server.

Users (conftest): vic viewer, mia and max members, ann approver in prod, sam approver in
staging, ada admin; the server's own client runs as mallory, who never appears."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelrail.errors import PermissionDeniedError, UserExistsError
from tests.server.conftest import HOST, Team
from tests.server.test_remote_client import _cli, _laptop, remote

ADMIN_ONLY = [
    ("GET", "/api/v1/users", None),
    ("GET", "/api/v1/users/mia", None),
    ("POST", "/api/v1/users", {"name": "zoe", "roles": ["member"]}),
    ("POST", "/api/v1/users/mia/roles", {"role": "approver", "environment": "prod"}),
    ("POST", "/api/v1/users/mia/roles/revoke", {"role": "member"}),
    ("POST", "/api/v1/users/max/disable", {}),
    ("POST", "/api/v1/tokens", {"user": "mia"}),
    ("GET", "/api/v1/tokens?user=ada", None),
]


@pytest.mark.parametrize("user", ["vic", "mia", "ann", "sam"])
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
def test_only_an_admin_manages_users_and_tokens(
    team: Team, user: str, method: str, path: str, body: object
) -> None:
    def state() -> object:  # users and tokens, but not when a token was last used
        return team.client.users(), [(t.id, t.user, t.revoked_at) for t in team.client.tokens()]

    before = state()
    reply = team.request(method, path, user=user, body=body)
    assert reply.status == 403, reply.body
    assert reply.json()["error"] == (
        f"{user} may not administer users and policy (needs the admin role)"
    )
    assert state() == before
    assert team.request(method, path, body=body).status == 401


def test_an_admin_manages_users_as_themselves(team: Team) -> None:
    added = team.post("/api/v1/users", "ada", {"name": "zoe@example.org", "roles": ["member"]})
    assert added.status == 200, added.body
    assert added.json()["created_by"] == "ada"
    granted = team.post(
        "/api/v1/users/zoe@example.org/roles", "ada", {"role": "approver", "environment": "prod"}
    )
    assert [g["role"] for g in granted.json()["roles"]] == ["member", "approver"]
    revoked = team.post("/api/v1/users/zoe@example.org/roles/revoke", "ada", {"role": "member"})
    assert revoked.json()["roles"] == [{"role": "approver", "environment": "prod"}]
    made = team.post("/api/v1/tokens", "ada", {"user": "zoe@example.org", "label": "laptop"})
    assert made.status == 200
    secret = made.json()["secret"]
    assert made.json()["token"]["created_by"] == "ada"
    assert team.get("/api/v1/whoami", token=secret).json()["name"] == "zoe@example.org"
    disabled = team.post("/api/v1/users/zoe@example.org/disable", "ada")
    assert disabled.json()["disabled_by"] == "ada"
    assert team.get("/api/v1/whoami", token=secret).status == 401
    listed = team.get("/api/v1/users", "ada").json()
    assert "zoe@example.org" in [u["name"] for u in listed]
    assert all("secret" not in json.dumps(t) for t in team.get("/api/v1/tokens", "ada").json())


def test_bad_identity_requests_are_4xx_naming_the_field(team: Team) -> None:
    cases = [
        ({"name": "zoe", "roles": "member"}, "roles"),
        ({"name": "zoe", "roles": [3]}, "roles"),
        ({"name": "zoe", "roles": ["owner"]}, None),
        ({"name": "a b"}, None),
        ({"roles": ["member"]}, "name"),
    ]
    for body, field in cases:
        reply = team.post("/api/v1/users", "ada", body)
        assert 400 <= reply.status < 500, (body, reply.body)
        if field:
            assert reply.json()["field"] == field
    assert team.post("/api/v1/users", "ada", {"name": "mia"}).status == 409
    reply = team.post("/api/v1/tokens", "ada", {"user": "mia", "expires_in_days": "soon"})
    assert reply.status == 422 and reply.json()["field"] == "expires_in_days"
    assert team.post("/api/v1/tokens", "ada", {"user": "nobody"}).status == 404
    assert team.post("/api/v1/tokens/99999/revoke", "ada").status == 404
    assert team.post("/api/v1/users/nobody/disable", "ada").status == 404


def test_a_user_lists_and_revokes_only_their_own_tokens(team: Team) -> None:
    own = team.get("/api/v1/tokens", "mia").json()
    assert [t["user"] for t in own] == ["mia"]
    assert team.get("/api/v1/tokens?user=mia", "mia").status == 200
    others = team.post(f"/api/v1/tokens/{team.token_ids['max']}/revoke", "mia")
    assert others.status == 403
    assert team.get("/api/v1/whoami", "max").status == 200
    mine = team.post(f"/api/v1/tokens/{team.token_ids['mia']}/revoke", "mia")
    assert mine.status == 200 and mine.json()["revoked_at"] is not None
    assert team.get("/api/v1/whoami", "mia").status == 401


def test_the_remote_client_manages_users_like_a_local_one(team: Team, tmp_path: Path) -> None:
    admin, member = remote(team, "ada", tmp_path), remote(team, "mia", tmp_path)
    assert admin.users() == team.client.users()
    with pytest.raises(PermissionDeniedError):
        member.users()
    zoe = admin.add_user("zoe", ["viewer", "approver@staging"])
    assert zoe == team.client.get_user("zoe") and zoe.created_by == "ada"
    with pytest.raises(UserExistsError):
        admin.add_user("zoe")
    token, secret = admin.create_token("zoe", "ci", expires_in_days=1.5)
    assert token in team.client.tokens("zoe") and secret.startswith("mr_")
    assert admin.revoke_token(token.id).revoked_at is not None
    assert admin.grant_role("zoe", "member") == team.client.get_user("zoe")
    assert admin.disable_user("zoe").disabled


def test_the_cli_manages_users_and_tokens_through_the_server(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder, env = _laptop(tmp_path_factory)
    env["MODELRAIL_SERVER"] = f"http://{HOST}:{team.port}"
    env["MODELRAIL_TOKEN"] = team.tokens["ada"]
    code, out = _cli(["users", "add", "zoe", "--role", "member"], folder, env)
    assert (code, out) == (0, "added user zoe: member\n")
    code, out = _cli(["users", "grant", "zoe", "--role", "approver", "--env", "prod"], folder, env)
    assert code == 0 and "approver in prod" in out
    code, out = _cli(["tokens", "create", "--user", "zoe", "--label", "laptop"], folder, env)
    assert code == 0, out
    secret = next(line for line in out.splitlines() if line.startswith("mr_"))
    env["MODELRAIL_TOKEN"] = secret
    code, out = _cli(["tokens", "list", "--json"], folder, env)
    assert [t["user"] for t in json.loads(out)] == ["zoe"]
    code, out = _cli(["users", "list"], folder, env)
    assert code == 12 and "needs the admin role" in out and "Traceback" not in out
    assert team.client.get_user("zoe").created_by == "ada"

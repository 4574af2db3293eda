"""The shared policy on a team server: everyone reads it, only an admin applies it (as
themselves), the server judges promotions by its permissions, and the CLI shows, compares
and applies it from a laptop with no store of its own.

Users (conftest): vic viewer, mia and max members, ann approver in prod, sam approver in
staging, ada admin; the server's own client runs as mallory, who never appears."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelrail.errors import ConfigError, PermissionDeniedError, PolicyNotFoundError
from modelrail.policy_document import canonical, parse_document
from tests.server.conftest import HOST, MODEL, Team, register
from tests.server.test_remote_client import _cli, _laptop, remote

# Only approvers may ask for staging; members keep asking for prod.
POLICY = """
[environments]
chain = ["dev", "staging", "prod"]

[environments.staging.permissions]
request = ["approver"]

[environments.prod.permissions]
force = []
"""


def test_everyone_reads_the_policy_in_force(team: Team) -> None:
    reply = team.get("/api/v1/policy", "vic")
    assert reply.status == 200, reply.body
    found = reply.json()
    assert found["version"] is None and found["record"] is None
    assert found["document"] == canonical(team.client.settings.policy)
    assert team.get("/api/v1/policy").status == 401
    assert team.get("/api/v1/policy/versions", "vic").json() == []
    assert team.get("/api/v1/policy/versions/1", "vic").status == 404


@pytest.mark.parametrize("user", ["vic", "mia", "ann", "sam"])
def test_only_an_admin_applies_a_policy(team: Team, user: str) -> None:
    reply = team.post("/api/v1/policy", user, {"document": POLICY})
    assert reply.status == 403, reply.body
    assert reply.json()["error"] == (
        f"{user} may not administer users and policy (needs the admin role)"
    )
    assert team.client.policy_history() == []


def test_an_admin_applies_it_as_themselves_and_the_server_obeys_it(team: Team) -> None:
    register(team.client)
    reply = team.post("/api/v1/policy", "ada", {"document": POLICY, "reason": "tighter"})
    assert reply.status == 200, reply.body
    assert reply.json()["created"] is True
    record = reply.json()["record"]
    assert (record["version"], record["author"], record["reason"]) == (1, "ada", "tighter")
    again = team.post("/api/v1/policy", "ada", {"document": POLICY})
    assert again.json()["created"] is False and again.json()["record"]["version"] == 1

    ask = {"reference": f"{MODEL}:1", "to": "staging"}
    refused = team.post("/api/v1/promotions", "mia", ask)
    assert refused.status == 403
    assert refused.json()["error"] == (
        "mia may not request promotions into staging (needs the approver role in staging)"
    )
    done = team.post("/api/v1/promotions", "sam", ask)
    assert done.status == 200, done.body
    assert done.json()["event"]["policy_version"] == 1
    forced = team.post(
        "/api/v1/promotions",
        "ada",
        {"reference": f"{MODEL}:1", "to": "prod", "force": True, "reason": "urgent"},
    )
    assert forced.status == 403 and "no role may do that in prod" in forced.json()["error"]
    versions = team.get("/api/v1/policy/versions", "vic").json()
    assert [v["version"] for v in versions] == [1]
    assert team.get("/api/v1/policy", "vic").json()["record"]["author"] == "ada"


def test_a_bad_document_is_a_422_naming_the_line(team: Team) -> None:
    bad = POLICY.replace('request = ["approver"]', 'request = ["boss"]')
    reply = team.post("/api/v1/policy", "ada", {"document": bad})
    assert reply.status == 422, reply.body
    assert reply.json()["field"] == "document"
    assert reply.json()["error"].startswith("the policy sent:6: ")
    for body in ({"document": "chain = ["}, {"document": 3}, {}, {"document": "x" * 300_000}):
        assert 400 <= team.post("/api/v1/policy", "ada", body).status < 500
    assert team.client.policy_history() == []


def test_the_remote_client_reads_and_applies_as_a_local_one(team: Team, tmp_path: Path) -> None:
    admin, member = remote(team, "ada", tmp_path), remote(team, "mia", tmp_path)
    assert canonical(member.policy) == canonical(team.client.policy)
    with pytest.raises(PolicyNotFoundError):
        member.policy_record()
    with pytest.raises(PermissionDeniedError):
        member.apply_policy(POLICY)
    with pytest.raises(ConfigError, match=r"^team\.toml:6: "):  # checked before it is sent
        admin.apply_policy(POLICY.replace("approver", "boss"), source="team.toml")
    record, created = admin.apply_policy(POLICY, reason="r")
    assert created and record == team.client.policy_record()
    assert member.policy_in_force() == team.client.policy_in_force()
    assert member.policy_history() == team.client.policy_history()
    assert member.policy_record(1) == record


def test_the_cli_shows_compares_and_applies_the_servers_policy(
    team: Team, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder, env = _laptop(tmp_path_factory)
    env["MODELRAIL_SERVER"] = f"http://{HOST}:{team.port}"
    (folder / "team.toml").write_text(POLICY, encoding="utf-8")
    env["MODELRAIL_TOKEN"] = team.tokens["mia"]
    code, out = _cli(["policy", "show"], folder, env)
    assert code == 0 and out.startswith("# no shared policy in the store"), out
    code, out = _cli(["policy", "diff", "team.toml"], folder, env)
    assert code == 0 and '+request = ["approver"]' in out, out
    code, out = _cli(["policy", "apply", "team.toml"], folder, env)
    assert code == 12 and "needs the admin role" in out and "Traceback" not in out
    env["MODELRAIL_TOKEN"] = team.tokens["ada"]
    code, out = _cli(["policy", "apply", "team.toml", "--reason", "tighter"], folder, env)
    assert (code, out) == (0, "applied team.toml as policy version 1\n")
    code, out = _cli(["policy", "apply", "team.toml"], folder, env)
    assert code == 0 and "nothing applied" in out
    code, out = _cli(["policy", "diff", "team.toml"], folder, env)
    assert code == 0 and "applying it changes nothing" in out
    code, out = _cli(["policy", "show", "--json"], folder, env)
    shown = json.loads(out)
    assert (shown["version"], shown["author"], shown["reason"]) == (1, "ada", "tighter")
    assert shown["document"] == canonical(parse_document(POLICY, "x"))
    code, out = _cli(["policy", "history", "--json"], folder, env)
    assert [r["author"] for r in json.loads(out)] == ["ada"]
    (folder / "bad.toml").write_text("[environments]\nchain = 3\n", encoding="utf-8")
    code, out = _cli(["policy", "apply", "bad.toml"], folder, env)
    assert code == 2 and "bad.toml:2: " in out and "Traceback" not in out
    code, out = _cli(["policy", "diff", "missing.toml"], folder, env)
    assert code == 2 and "missing.toml: no such file" in out

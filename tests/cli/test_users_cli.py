"""``modelrail users`` and ``modelrail tokens`` as an admin runs them, on SQLite and
PostgreSQL: the secret is printed once (alone on stdout), listings never show it, and bad
input gets one line and its exit code."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.errors import AuthenticationError
from tests.cli.test_cli import cli

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def admin(store_url: str, tmp_path: Path) -> Run:
    """Runs ``modelrail ...`` as the user ``admin`` against the test store."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {"MODELRAIL_STORE": store_url, "MODELRAIL_USER": "admin"}
        return cli(tmp_path, *args, env=env)

    return run


def _client(store_url: str, tmp_path: Path) -> Client:
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    return Client(store_url=store_url, settings=settings, user="server")


def test_users_are_added_granted_revoked_disabled_and_listed(admin: Run) -> None:
    added = admin("users", "add", "alice", "--role", "member")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added user alice: member"
    done = admin("users", "add", "bob", "--role", "approver", "--role", "viewer", "--env", "prod")
    assert done.stdout.strip() == "added user bob: approver in prod, viewer in prod"
    granted = admin("users", "grant", "alice", "--role", "approver", "--env", "prod")
    assert granted.stdout.strip() == "alice holds member, approver in prod"
    revoked = admin("users", "revoke-role", "bob", "--role", "viewer", "--env", "prod")
    assert revoked.stdout.strip() == "bob holds approver in prod"
    disabled = admin("users", "disable", "bob")
    assert "disabled user bob" in disabled.stdout
    table = admin("users", "list").stdout
    assert "alice" in table and "member, approver in prod" in table and "by admin" in table
    listed = json.loads(admin("users", "list", "--json").stdout)
    assert [(u["name"], u["disabled"], u["created_by"]) for u in listed] == [
        ("alice", False, "admin"),
        ("bob", True, "admin"),
    ]
    assert listed[0]["roles"] == [
        {"role": "member", "environment": None},
        {"role": "approver", "environment": "prod"},
    ]


def test_a_token_is_printed_once_then_listed_without_its_secret_and_revoked(
    admin: Run,
    store_url: str,
    tmp_path: Path,
) -> None:
    admin("users", "add", "alice", "--role", "member")
    created = admin(
        "tokens", "create", "--user", "alice", "--label", "laptop", "--expires-days", "30"
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert created.stdout == secret + "\n" and secret.startswith("mr_")
    assert "created API token 1 'laptop' for alice, expires" in created.stderr
    assert "not shown again" in created.stderr and secret not in created.stderr
    table = admin("tokens", "list")
    listed = json.loads(admin("tokens", "list", "--user", "alice", "--json").stdout)
    assert "laptop" in table.stdout and "active" in table.stdout
    assert [(t["id"], t["label"], t["state"]) for t in listed] == [(1, "laptop", "active")]
    for shown in (table.stdout, json.dumps(listed)):
        assert secret[3:15] not in shown
    with _client(store_url, tmp_path) as server:
        assert server.authenticate(secret).name == "alice"
        revoked = admin("tokens", "revoke", "1")
        assert revoked.stdout.strip() == "revoked API token 1 of alice"
        with pytest.raises(AuthenticationError, match="is revoked"):
            server.authenticate(secret)
    assert json.loads(admin("tokens", "list", "--json").stdout)[0]["state"] == "revoked"


# (arguments, exit code, what the one error line says)
BAD_INPUT = [
    (("users", "add", "carol", "--role", "boss"), 2, "unknown role 'boss': one of viewer, member"),
    (("users", "add", "alice", "--role", "viewer"), 2, "a user named 'alice' exists already"),
    (("users", "add", "-x", "--role", "viewer"), 2, ""),  # the parser's: not a name
    (("users", "add", "al ice", "--role", "viewer"), 2, "invalid user name 'al ice'"),
    (("users", "grant", "nobody", "--role", "member"), 4, "no user named 'nobody'"),
    (("users", "grant", "alice", "--role", "approver", "--env", "qa"), 4, "unknown environment"),
    (("users", "grant", "alice", "--role", "admin", "--env", "prod"), 2, "every environment"),
    (("users", "revoke-role", "alice", "--role", "admin"), 2, "does not hold the admin role"),
    (("users", "disable", "nobody"), 4, "no user named 'nobody'"),
    (("tokens", "create", "--user", "nobody"), 4, "no user named 'nobody'"),
    (("tokens", "create", "--user", "alice", "--expires-days", "0"), 2, "positive number of days"),
    (("tokens", "create", "--user", "alice", "--expires-days", "-3"), 2, "positive number of days"),
    (("tokens", "list", "--user", "nobody"), 4, "no user named 'nobody'"),
    (("tokens", "revoke", "7"), 4, "no API token with id 7"),
    (("tokens", "revoke", "seven"), 2, ""),  # the parser's: not a number
]


def test_bad_input_gets_one_line_and_its_exit_code(admin: Run) -> None:
    assert admin("users", "add", "alice", "--role", "member").returncode == 0
    for args, code, message in BAD_INPUT:
        done = admin(*args)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, args
        if message:
            assert done.stderr.startswith("error: ") and message in done.stderr, (args, done.stderr)
    # Nothing refused was stored.
    listed = json.loads(admin("users", "list", "--json").stdout)
    assert [(u["name"], len(u["roles"])) for u in listed] == [("alice", 1)]
    assert json.loads(admin("tokens", "list", "--json").stdout) == []

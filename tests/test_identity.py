"""Users, roles and API tokens as a team's admin and its members meet them, on SQLite and
PostgreSQL: a token's secret is shown once and only its hash is stored; revoked, expired
and unknown tokens and disabled users are refused at once, without the token in the
message."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from modelrail import errors
from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.entities import RoleGrant
from modelrail.errors import (
    AuthenticationError,
    EnvironmentNotFoundError,
    InvalidInputError,
    TokenNotFoundError,
    UserExistsError,
    UserNotFoundError,
)
from modelrail.identity import LAST_USED_EVERY_SECONDS, Identity
from modelrail.store import tables as t
from modelrail.store.identity_repo import IdentityRepository

DAY = 86_400.0


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def other_client(store_url: str, tmp_path: Path) -> Iterator[Client]:
    """A second process's client on the same store (the server, while an admin uses the CLI)."""
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(store_url=store_url, settings=settings, user="server") as made:
        yield made


def _stored_rows(client: Client) -> list[dict[str, object]]:
    with client.db.read() as conn:
        return [
            dict(row)
            for table in (t.users, t.user_roles, t.api_tokens)
            for row in conn.execute(select(table)).mappings()
        ]


# -- tokens --------------------------------------------------------------------------------


def test_a_token_secret_is_shown_once_and_only_its_sha256_is_stored(client: Client) -> None:
    client.add_user("alice", ["member"])
    token, secret = client.create_token("alice", "laptop")
    _, second = client.create_token("alice", "ci")
    assert secret.startswith("mr_") and len(secret) >= 40 and second != secret
    with client.db.read() as conn:
        stored = conn.execute(select(t.api_tokens).where(t.api_tokens.c.id == token.id)).one()
    assert stored.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    # The secret (or any piece of it) is nowhere in the identity tables.
    tail = secret.removeprefix("mr_")
    for row in _stored_rows(client):
        for value in row.values():
            assert tail[:12] not in str(value)
    # Listing shows the token but never its secret or its hash.
    (listed, _) = client.tokens("alice")
    assert listed == token and listed.label == "laptop" and listed.user == "alice"
    shown = repr(client.tokens())
    assert tail[:12] not in shown and stored.secret_sha256 not in shown


def test_a_token_signs_its_user_in_and_its_last_use_is_recorded(client: Client) -> None:
    client.add_user("alice", ["member", "approver@prod"])
    token, secret = client.create_token("alice")
    assert client.tokens()[0].last_used_at is None
    user = client.authenticate(secret)
    assert user.name == "alice"
    assert user.roles == (RoleGrant("member"), RoleGrant("approver", "prod"))
    (used,) = client.tokens()
    assert used.id == token.id and used.last_used_at is not None


def test_a_revoked_token_is_refused_on_the_next_call(client: Client, other_client: Client) -> None:
    client.add_user("alice", ["member"])
    token, secret = client.create_token("alice", "laptop")
    assert other_client.authenticate(secret).name == "alice"
    revoked = client.revoke_token(token.id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError, match=f"API token {token.id} .* is revoked") as exc:
        other_client.authenticate(secret)
    assert exc.value.reason == "revoked" and secret not in str(exc.value)
    # Revoking again changes nothing; an unknown id is an error.
    assert client.revoke_token(token.id).revoked_at == revoked.revoked_at
    for missing in (token.id + 1, 0, -1, 2**40):
        with pytest.raises(TokenNotFoundError, match=f"no API token with id {missing}"):
            client.revoke_token(missing)


def test_an_expired_token_is_refused(client: Client) -> None:
    clock = Clock()
    identity = Identity(IdentityRepository(client.db), actor="admin", clock=clock)
    identity.add_user("alice", ["member"])
    token, secret = identity.create_token("alice", "ci", expires_in_days=2)
    assert token.expires_at == clock.now + 2 * DAY
    clock.now += 2 * DAY - 1
    assert identity.authenticate(secret).name == "alice"
    clock.now += 1
    with pytest.raises(AuthenticationError, match=f"API token {token.id} .* is expired") as exc:
        identity.authenticate(secret)
    assert exc.value.reason == "expired" and secret not in str(exc.value)
    assert identity.tokens()[0].state(clock.now) == "expired"


def test_last_use_is_written_at_most_once_a_minute(client: Client) -> None:
    clock = Clock()
    identity = Identity(IdentityRepository(client.db), actor="admin", clock=clock)
    identity.add_user("alice", ["member"])
    _, secret = identity.create_token("alice")
    identity.authenticate(secret)
    first = clock.now
    clock.now += LAST_USED_EVERY_SECONDS / 2
    identity.authenticate(secret)
    assert identity.tokens()[0].last_used_at == first
    clock.now += LAST_USED_EVERY_SECONDS
    identity.authenticate(secret)
    assert identity.tokens()[0].last_used_at == clock.now


def test_a_disabled_users_tokens_are_refused_and_no_new_ones_are_made(
    client: Client, other_client: Client
) -> None:
    client.add_user("bob", ["approver@prod"])
    _, secret = client.create_token("bob")
    assert other_client.authenticate(secret).name == "bob"
    disabled = client.disable_user("bob")
    assert disabled.disabled and disabled.disabled_by == "tester"
    with pytest.raises(AuthenticationError, match="belongs to bob, who is disabled") as exc:
        other_client.authenticate(secret)
    assert exc.value.reason == "disabled" and secret not in str(exc.value)
    with pytest.raises(InvalidInputError, match="'bob' is disabled"):
        client.create_token("bob")
    # Disabled, not deleted: the name stays taken.
    assert [u.name for u in client.users()] == ["bob"]
    with pytest.raises(UserExistsError, match="never reused"):
        client.add_user("bob", ["viewer"])


@pytest.mark.parametrize(
    "presented",
    [
        "mr_" + "A" * 43,  # the right shape, never issued
        "{secret}x",  # a real secret with one more character
        "{secret_head}",  # a real secret cut short
        "",
        "   ",
        "mr_" + "B" * 10_000,
    ],
    ids=["never-issued", "one-more-character", "truncated", "empty", "blank", "huge"],
)
def test_an_unknown_token_is_refused_without_showing_it(client: Client, presented: str) -> None:
    client.add_user("alice", ["member"])
    _, secret = client.create_token("alice")
    presented = presented.format(secret=secret, secret_head=secret[:-1])
    with pytest.raises(AuthenticationError) as exc:
        client.authenticate(presented)
    message = str(exc.value)
    assert message in ("unknown API token", "no API token was given")
    assert secret[3:15] not in message and (not presented.strip() or presented not in message)


def test_authentication_and_permission_errors_have_their_own_exit_codes() -> None:
    assert (errors.AuthenticationError.http_status, errors.PermissionDeniedError.http_status) == (
        401,
        403,
    )
    others = {
        cls.exit_code
        for cls in _error_classes()
        if cls not in (errors.AuthenticationError, errors.PermissionDeniedError)
    }
    assert errors.AuthenticationError.exit_code not in others
    assert errors.PermissionDeniedError.exit_code not in others
    assert errors.AuthenticationError.exit_code != errors.PermissionDeniedError.exit_code


def _error_classes() -> list[type[errors.ModelrailError]]:
    found, pending = [], [errors.ModelrailError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("days", [0, -1, -0.5, math.nan, math.inf, 10**9, True])
def test_a_token_expiry_must_be_a_positive_number_of_days(client: Client, days: float) -> None:
    client.add_user("alice", ["member"])
    with pytest.raises(InvalidInputError, match="positive number of days"):
        client.create_token("alice", expires_in_days=days)
    assert client.tokens() == []


def test_tokens_of_someone_unknown_are_refused(client: Client) -> None:
    with pytest.raises(UserNotFoundError, match="no user named 'nobody'"):
        client.create_token("nobody")
    with pytest.raises(UserNotFoundError, match="no user named 'nobody'"):
        client.tokens("nobody")


# -- users and roles -----------------------------------------------------------------------


def test_users_are_added_with_roles_granted_and_revoked(client: Client) -> None:
    alice = client.add_user("alice", ["member"])
    assert alice.roles == (RoleGrant("member"),) and alice.created_by == "tester"
    client.add_user("bob@example.org", [RoleGrant("approver", "prod"), "member"])
    assert client.grant_role("alice", "approver", "staging").roles == (
        RoleGrant("member"),
        RoleGrant("approver", "staging"),
    )
    # Granting a role held already changes nothing.
    assert len(client.grant_role("alice", "approver", "staging").roles) == 2
    assert client.grant_role("alice", "approver").roles[-1] == RoleGrant("approver")
    after = client.revoke_role("alice", "approver", "staging")
    assert after.roles == (RoleGrant("member"), RoleGrant("approver"))
    assert [u.name for u in client.users()] == ["alice", "bob@example.org"]
    assert client.get_user("bob@example.org").roles == (
        RoleGrant("approver", "prod"),
        RoleGrant("member"),
    )


def test_role_changes_that_cannot_be_made_are_refused(client: Client) -> None:
    client.add_user("alice", ["member"])
    with pytest.raises(InvalidInputError, match="unknown role 'boss': one of viewer, member"):
        client.grant_role("alice", "boss")
    with pytest.raises(InvalidInputError, match="unknown role 'root'"):
        client.add_user("carol", ["root"])
    with pytest.raises(EnvironmentNotFoundError, match="'qa': the chain is dev -> staging"):
        client.grant_role("alice", "approver", "qa")
    with pytest.raises(InvalidInputError, match="admin role holds in every environment"):
        client.grant_role("alice", "admin", "prod")
    with pytest.raises(InvalidInputError, match="does not hold the approver role in prod"):
        client.revoke_role("alice", "approver", "prod")
    with pytest.raises(UserExistsError, match="'alice' exists already"):
        client.add_user("alice", ["viewer"])
    for change in (
        lambda: client.grant_role("nobody", "member"),
        lambda: client.revoke_role("nobody", "member"),
        lambda: client.disable_user("nobody"),
        lambda: client.get_user("nobody"),
    ):
        with pytest.raises(UserNotFoundError, match="no user named 'nobody'"):
            change()
    # Nothing refused was stored.
    assert [u.name for u in client.users()] == ["alice"]
    assert client.get_user("alice").roles == (RoleGrant("member"),)


@pytest.mark.parametrize("name", ["", "-alice", "al ice", "a" * 129, "alice/x", "ålice"])
def test_malformed_user_names_are_refused(client: Client, name: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid user name"):
        client.add_user(name, ["viewer"])


def test_the_store_keeps_every_environment_grant_unique(client: Client) -> None:
    """Two racing grants of the same everywhere role cannot both land (NULL environments
    are distinct in a plain unique constraint; a partial index covers them)."""
    client.add_user("alice", ["member"])
    with pytest.raises(IntegrityError), client.db.write() as conn:
        user_id = conn.execute(text("SELECT id FROM users WHERE name = 'alice'")).scalar()
        conn.execute(
            t.user_roles.insert(),
            {
                "user_id": user_id,
                "role": "member",
                "environment": None,
                "granted_at": 0.0,
                "granted_by": "race",
            },
        )

"""Users, their roles and personal API tokens, and signing in with a token.

A token's secret (``mr_`` and 43 random URL-safe characters, 256 bits) is returned once,
when it is created; the store keeps only its sha256. ``authenticate`` reads the token and
its user afresh on every call (nothing is cached), so revoking a token or disabling a user
takes effect on the very next request. Its refusals never contain the token.

The team server (coming) signs requests in with ``authenticate`` and checks what they may
do with ``modelrail.permissions``; locally, whoever can write the store manages users.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from modelrail.entities import ApiToken, RoleGrant, User
from modelrail.errors import (
    AuthenticationError,
    EnvironmentNotFoundError,
    InvalidInputError,
    TokenNotFoundError,
    UserNotFoundError,
)
from modelrail.permissions import GLOBAL_ROLES, ROLES
from modelrail.refs import validate_name

if TYPE_CHECKING:
    from modelrail.store.identity_repo import IdentityStore

TOKEN_PREFIX = "mr_"
_SECRET_BYTES = 32
# Longer than any secret this module makes: hashed no further, refused as unknown.
_MAX_SECRET_LENGTH = 256
# A token's last use is written at most this often, not on every request.
LAST_USED_EVERY_SECONDS = 60.0
_DAY = 86_400.0
_MAX_ID = 2**31 - 1  # ids are 32-bit integers in PostgreSQL
# Longer than any real expiry, short enough to stay a finite timestamp.
_MAX_EXPIRY_DAYS = 36_500
# User names: like model names, plus '@' and '+' so an e-mail address (the usual
# single-sign-on identity) is a valid name.
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


def hash_secret(secret: str) -> str:
    """The sha256 (hex) a token's secret is stored and looked up as."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_role(text: str | RoleGrant) -> RoleGrant:
    """``member`` (every environment) or ``approver@prod`` (one environment) as a grant."""
    if isinstance(text, RoleGrant):
        return text
    role, _, environment = str(text).partition("@")
    return RoleGrant(role.strip(), environment.strip() or None)


class Identity:
    """Add, list and disable users, grant and revoke their roles, create, list and revoke
    their tokens, and sign a token's holder in.

    ``environments`` is the chain role grants may name (None: any valid name); ``actor``
    names who makes the changes; ``clock`` gives the time (tests move it)."""

    def __init__(
        self,
        repo: IdentityStore,
        *,
        actor: str,
        environments: Sequence[str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.repo = repo
        self.actor = actor
        self.environments = tuple(environments) if environments is not None else None
        self._clock = clock

    def now(self) -> float:
        return self._clock() if self._clock is not None else time.time()

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str, roles: Iterable[str | RoleGrant] = ()) -> User:
        """Create a user with ``roles`` (``member``, ``approver@prod`` or ``RoleGrant``)."""
        _check_user_name(name)
        grants = [self._checked(parse_role(role)) for role in roles]
        return self.repo.add_user(name, grants, created_at=self.now(), created_by=self.actor)

    def users(self) -> list[User]:
        """Every user, by name, disabled ones included."""
        return self.repo.users()

    def user(self, name: str) -> User:
        found = self.repo.get_user(name)
        if found is None:
            raise UserNotFoundError(f"no user named {name!r}")
        return found

    def disable_user(self, name: str) -> User:
        """Disable the user: their tokens stop working on the next request. Names are
        never reused, so the user stays listed (disabled)."""
        return self.repo.disable_user(name, at=self.now(), by=self.actor)

    def grant_role(self, name: str, role: str, environment: str | None = None) -> User:
        """Give the user ``role`` in ``environment`` (None: every environment); granting a
        role the user holds already changes nothing."""
        grant = self._checked(RoleGrant(role, environment))
        self.repo.add_role(name, grant, at=self.now(), by=self.actor)
        return self.user(name)

    def revoke_role(self, name: str, role: str, environment: str | None = None) -> User:
        """Take back ``role`` in ``environment`` (None: the every-environment grant)."""
        grant = self._checked(RoleGrant(role, environment))
        if not self.repo.remove_role(name, grant):
            held = ", ".join(str(g) for g in self.user(name).roles) or "no role"
            where = environment or "every environment"
            raise InvalidInputError(
                f"{name} does not hold the {role} role in {where} (holds: {held})"
            )
        return self.user(name)

    def _checked(self, grant: RoleGrant) -> RoleGrant:
        if grant.role not in ROLES:
            raise InvalidInputError(f"unknown role {grant.role!r}: one of {', '.join(ROLES)}")
        if grant.environment is None:
            return grant
        if grant.role in GLOBAL_ROLES:
            raise InvalidInputError(
                f"the {grant.role} role holds in every environment: grant it without one"
            )
        validate_name("environment", grant.environment)
        if self.environments is not None and grant.environment not in self.environments:
            raise EnvironmentNotFoundError(
                f"unknown environment {grant.environment!r}: the chain is "
                f"{' -> '.join(self.environments)}"
            )
        return grant

    # -- tokens ------------------------------------------------------------------------

    def create_token(
        self, user: str, label: str = "", expires_in_days: float | None = None
    ) -> tuple[ApiToken, str]:
        """A new token for ``user`` and its secret. The secret is returned only here: the
        store keeps its sha256, so it cannot be shown again."""
        if expires_in_days is not None and not (
            isinstance(expires_in_days, int | float)
            and not isinstance(expires_in_days, bool)
            and math.isfinite(expires_in_days)
            and 0 < expires_in_days <= _MAX_EXPIRY_DAYS
        ):
            raise InvalidInputError(
                f"a token's expiry must be a positive number of days (at most "
                f"{_MAX_EXPIRY_DAYS:,}), not {expires_in_days!r}"
            )
        if len(label) > 128:
            raise InvalidInputError(f"a token's label has at most 128 characters, not {len(label)}")
        owner = self.user(user)
        if owner.disabled:
            raise InvalidInputError(f"user {user!r} is disabled: it may not have new tokens")
        now = self.now()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        token = self.repo.add_token(
            owner.name,
            label=label,
            secret_sha256=hash_secret(secret),
            created_at=now,
            created_by=self.actor,
            expires_at=None if expires_in_days is None else now + expires_in_days * _DAY,
        )
        return token, secret

    def tokens(self, user: str | None = None) -> list[ApiToken]:
        """Every token (of ``user``), oldest first; never a secret."""
        if user is not None:
            self.user(user)  # an unknown user is an error, not an empty list
        return self.repo.tokens(user)

    def revoke_token(self, token_id: int) -> ApiToken:
        """Revoke a token; it is refused from the next ``authenticate`` on. Revoking it
        again changes nothing."""
        in_range = isinstance(token_id, int) and 0 < token_id <= _MAX_ID
        token = self.repo.revoke_token(token_id, at=self.now()) if in_range else None
        if token is None:
            raise TokenNotFoundError(f"no API token with id {token_id}")
        return token

    # -- signing in --------------------------------------------------------------------

    def authenticate(self, secret: str) -> User:
        """The user a token's secret signs in, or ``AuthenticationError`` when the token is
        unknown, revoked or expired or its user is disabled. Read afresh on every call."""
        return self.sign_in(secret)[1]

    def sign_in(self, secret: str) -> tuple[ApiToken, User]:
        """As ``authenticate``, with the token that signed in (a session that outlives the
        request keeps its id, to stop when the token is revoked)."""
        if not isinstance(secret, str) or not secret.strip():
            raise AuthenticationError("no API token was given", reason="missing")
        secret = secret.strip()
        if len(secret) > _MAX_SECRET_LENGTH:
            raise AuthenticationError("unknown API token", reason="unknown")
        digest = hash_secret(secret)
        found = self.repo.find_token(digest)
        if found is None or not hmac.compare_digest(found[1], digest):
            raise AuthenticationError("unknown API token", reason="unknown")
        token, _, user = found
        now = self.now()
        state = token.state(now)
        if state != "active":
            raise AuthenticationError(
                f"API token {token.id} ({_described(token)}) is {state}", reason=state
            )
        if user.disabled:
            raise AuthenticationError(
                f"API token {token.id} belongs to {user.name}, who is disabled",
                reason="disabled",
            )
        # A write transaction per request would serialise every request on the store's
        # write lock: the use is recorded only once it is older than the interval.
        used = token.last_used_at
        if used is None or used < now - LAST_USED_EVERY_SECONDS:
            self.repo.touch_token(token.id, at=now, every=LAST_USED_EVERY_SECONDS)
        return token, user

    def token(self, token_id: int) -> ApiToken:
        """One token by id (``TokenNotFoundError`` when there is none); never its secret."""
        in_range = isinstance(token_id, int) and 0 < token_id <= _MAX_ID
        found = self.repo.get_token(token_id) if in_range else None
        if found is None:
            raise TokenNotFoundError(f"no API token with id {token_id}")
        return found


def _described(token: ApiToken) -> str:
    label = f"{token.label!r} of " if token.label else ""
    return f"{label}{token.user}"


def _check_user_name(name: str) -> None:
    if not isinstance(name, str) or not _USER_NAME.match(name):
        raise InvalidInputError(
            f"invalid user name {name!r}: use letters, digits, '.', '_', '-', '@' or '+' "
            "(at most 128, starting with a letter or digit)"
        )

"""Users, roles and API tokens through ``Client``.

``IdentityMethods`` is mixed into ``Client`` (it is not used on its own); every method
delegates to the ``Identity`` service, built on first use from the store's identity
repository, the client's user (who makes the changes) and the environment chain (which
role grants may name). Nothing about tokens is cached: ``authenticate`` reads the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from modelrail.client import Client
    from modelrail.config import Settings
    from modelrail.entities import ApiToken, RoleGrant, User
    from modelrail.identity import Identity
    from modelrail.store.db import Database


class IdentityMethods:
    """Users, roles and tokens: the identity half of ``Client``."""

    db: Database
    settings: Settings
    user: str
    _identity: Identity | None = None

    @property
    def identity_service(self) -> Identity:
        if self._identity is None:
            from modelrail.identity import Identity
            from modelrail.store.identity_repo import IdentityRepository

            self._identity = Identity(
                IdentityRepository(self.db),
                actor=self.user,
                environments=cast("Client", self).policy.chain,
            )
        return self._identity

    def users(self) -> list[User]:
        """Every user with their roles, by name (disabled ones included)."""
        return self.identity_service.users()

    def get_user(self, name: str) -> User:
        return self.identity_service.user(name)

    def add_user(self, name: str, roles: Iterable[str | RoleGrant] = ()) -> User:
        """Create a user holding ``roles``: ``"member"`` (every environment),
        ``"approver@prod"`` (one environment) or ``RoleGrant``s."""
        return self.identity_service.add_user(name, roles)

    def grant_role(self, name: str, role: str, environment: str | None = None) -> User:
        """Give a user ``role`` in ``environment`` (None: in every environment)."""
        return self.identity_service.grant_role(name, role, environment)

    def revoke_role(self, name: str, role: str, environment: str | None = None) -> User:
        """Take back a role the user holds in ``environment`` (None: the everywhere grant)."""
        return self.identity_service.revoke_role(name, role, environment)

    def disable_user(self, name: str) -> User:
        """Disable a user: none of their tokens signs in any more."""
        return self.identity_service.disable_user(name)

    def create_token(
        self, user: str, label: str = "", expires_in_days: float | None = None
    ) -> tuple[ApiToken, str]:
        """A personal API token for ``user`` and its secret, which is shown only now."""
        return self.identity_service.create_token(user, label, expires_in_days)

    def tokens(self, user: str | None = None) -> list[ApiToken]:
        """Every API token (of ``user``), oldest first, without secrets."""
        return self.identity_service.tokens(user)

    def revoke_token(self, token_id: int) -> ApiToken:
        """Revoke a token: it is refused from the next sign-in on."""
        return self.identity_service.revoke_token(token_id)

    def authenticate(self, secret: str) -> User:
        """The user a token's secret signs in; ``AuthenticationError`` otherwise."""
        return self.identity_service.authenticate(secret)

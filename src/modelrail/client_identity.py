"""Users, roles and API tokens through ``Client``.

``IdentityMethods`` is mixed into ``Client`` (it is not used on its own); every method
delegates to the ``Identity`` service, built on first use from the store's identity
repository, the client's user (who makes the changes) and the environment chain (which
role grants may name). Nothing about tokens is cached: ``authenticate`` reads the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelrail.config import Settings
    from modelrail.entities import ApiToken, RoleGrant, User
    from modelrail.identity import Identity
    from modelrail.policy import PromotionPolicy
    from modelrail.store.db import Database


class IdentityMethods:
    """Users, roles and tokens: the identity half of ``Client``."""

    db: Database
    settings: Settings
    user: str
    _identity: Identity | None = None

    if TYPE_CHECKING:  # PolicyMethods, mixed into Client too, defines it

        @property
        def policy(self) -> PromotionPolicy: ...

    @property
    def identity_service(self) -> Identity:
        if self._identity is None:
            from modelrail.identity import Identity
            from modelrail.store.identity_repo import IdentityRepository

            self._identity = Identity(
                IdentityRepository(self.db),
                actor=self.user,
                environments=self.policy.chain,
            )
        return self._identity

    def _identity_as(self, actor: str | None) -> Identity:
        """The service acting as ``actor`` (None: the client's user), as the team server
        acts for the signed-in admin."""
        service = self.identity_service
        if actor is None or actor == service.actor:
            return service
        from modelrail.identity import Identity

        return Identity(service.repo, actor=actor, environments=service.environments)

    def users(self) -> list[User]:
        """Every user with their roles, by name (disabled ones included)."""
        return self.identity_service.users()

    def get_user(self, name: str) -> User:
        return self.identity_service.user(name)

    def add_user(
        self, name: str, roles: Iterable[str | RoleGrant] = (), *, actor: str | None = None
    ) -> User:
        """Create a user holding ``roles``: ``"member"`` (every environment),
        ``"approver@prod"`` (one environment) or ``RoleGrant``s. ``actor`` (here and below)
        names who makes the change (default: the client's user)."""
        return self._identity_as(actor).add_user(name, roles)

    def grant_role(
        self, name: str, role: str, environment: str | None = None, *, actor: str | None = None
    ) -> User:
        """Give a user ``role`` in ``environment`` (None: in every environment)."""
        return self._identity_as(actor).grant_role(name, role, environment)

    def revoke_role(
        self, name: str, role: str, environment: str | None = None, *, actor: str | None = None
    ) -> User:
        """Take back a role the user holds in ``environment`` (None: the everywhere grant)."""
        return self._identity_as(actor).revoke_role(name, role, environment)

    def disable_user(self, name: str, *, actor: str | None = None) -> User:
        """Disable a user: none of their tokens signs in any more."""
        return self._identity_as(actor).disable_user(name)

    def create_token(
        self,
        user: str,
        label: str = "",
        expires_in_days: float | None = None,
        *,
        actor: str | None = None,
    ) -> tuple[ApiToken, str]:
        """A personal API token for ``user`` and its secret, which is shown only now."""
        return self._identity_as(actor).create_token(user, label, expires_in_days)

    def tokens(self, user: str | None = None) -> list[ApiToken]:
        """Every API token (of ``user``), oldest first, without secrets."""
        return self.identity_service.tokens(user)

    def revoke_token(self, token_id: int) -> ApiToken:
        """Revoke a token: it is refused from the next sign-in on."""
        return self.identity_service.revoke_token(token_id)

    def authenticate(self, secret: str) -> User:
        """The user a token's secret signs in; ``AuthenticationError`` otherwise."""
        return self.identity_service.authenticate(secret)

    def sign_in(self, secret: str) -> tuple[ApiToken, User]:
        """As ``authenticate``, with the token that signed in."""
        return self.identity_service.sign_in(secret)

    def api_token(self, token_id: int) -> ApiToken:
        """One API token by id, without its secret (``TokenNotFoundError`` if unknown)."""
        return self.identity_service.token(token_id)

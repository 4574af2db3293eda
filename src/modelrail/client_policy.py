"""The team's shared policy through ``Client``: the one in force, its versions, applying one.

``PolicyMethods`` is mixed into ``Client``. While the store holds no policy, the project's
modelrail.toml is the policy, as for a single user on a laptop. Once an admin applies one,
the store's newest version governs every client of the store: a local file can no longer
loosen the chain, the gates or the permissions (it keeps only its deployment settings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelrail.errors import PermissionDeniedError, UserNotFoundError
from modelrail.permissions import require
from modelrail.policy_document import canonical, governed_by, parse_document
from modelrail.store.policy_repo import PolicyRepository

if TYPE_CHECKING:
    from modelrail.config import Settings
    from modelrail.entities import PolicyRecord
    from modelrail.identity import Identity
    from modelrail.policy import PromotionPolicy
    from modelrail.store.db import Database


class PolicyMethods:
    """The shared policy: the policy half of ``Client``."""

    db: Database
    settings: Settings
    user: str
    # The newest stored version, parsed, kept until another is applied.
    _stored_policy: tuple[int, PromotionPolicy] | None = None

    if TYPE_CHECKING:  # IdentityMethods, mixed into Client too, defines it

        @property
        def identity_service(self) -> Identity: ...

    @property
    def policy(self) -> PromotionPolicy:
        """The environment chain, gates and permissions that judge promotions."""
        return self.policy_in_force()[0]

    def policy_in_force(self) -> tuple[PromotionPolicy, int | None]:
        """The policy that judges a change now, and its stored version (None: the
        project's own file, as the store holds no shared policy)."""
        repo = PolicyRepository(self.db)
        version = repo.latest_version()
        if version is None:
            return self.settings.policy, None
        stored = self._stored_policy
        if stored is None or stored[0] != version:
            record = repo.get(version)
            parsed = parse_document(record.document, f"the store's policy version {version}")
            stored = self._stored_policy = (version, governed_by(parsed, self.settings.policy))
        return stored[1], version

    def policy_record(self, version: int | None = None) -> PolicyRecord:
        """Stored version ``version`` of the shared policy (None: the newest);
        ``PolicyNotFoundError`` when there is none."""
        return PolicyRepository(self.db).get(version)

    def policy_history(self) -> list[PolicyRecord]:
        """Every applied version of the shared policy, oldest first."""
        return PolicyRepository(self.db).history()

    def apply_policy(
        self,
        document: str,
        *,
        source: str = "the policy",
        reason: str = "",
        actor: str | None = None,
    ) -> tuple[PolicyRecord, bool]:
        """Make the ``[environments]`` table of the TOML ``document`` the shared policy.

        It is checked in full first (``ConfigError`` naming ``source`` and the line), then
        stored in canonical form as the next version. Applying what is in force already
        stores nothing: the newest version comes back with False.

        Once the store has users, ``actor`` must be one of them with the admin role
        (``PermissionDeniedError``). Over a direct connection to the store that name is
        the one this machine declares, so it guards against mistakes, not against people:
        the team server checks the signed-in admin."""
        actor = actor or self.user
        text = canonical(parse_document(document, source))
        identity = self.identity_service
        if identity.users():
            try:
                user = identity.user(actor)
            except UserNotFoundError:
                raise PermissionDeniedError(
                    f"{actor} may not administer users and policy: no user of this store "
                    "has that name (set MODELRAIL_USER to an admin's name)",
                    user=actor,
                    action="admin",
                    environment=None,
                ) from None
            require(user, "admin")
        return PolicyRepository(self.db).append(text, actor, reason)

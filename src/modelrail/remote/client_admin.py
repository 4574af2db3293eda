"""The team server's administration through ``RemoteClient``: the shared policy, users,
roles and tokens, with ``Client``'s signatures. Mixed into ``RemoteClient`` only.

Changes are made by the signed-in user, who needs the admin role there; ``actor`` is not
sent (the server records who signed in)."""

from __future__ import annotations

from collections.abc import Iterable

from modelrail.config import Settings
from modelrail.entities import ApiToken, PolicyRecord, RoleGrant, User
from modelrail.errors import AuthenticationError, PolicyNotFoundError, ServerResponseError
from modelrail.policy import PromotionPolicy
from modelrail.policy_document import canonical, governed_by, parse_document
from modelrail.remote.connection import ServerConnection, segment
from modelrail.remote.decode import decode, decode_list


class RemoteAdministration:
    connection: ServerConnection
    settings: Settings

    # -- the shared policy ----------------------------------------------------------------

    @property
    def policy(self) -> PromotionPolicy:
        return self.policy_in_force()[0]

    def policy_in_force(self) -> tuple[PromotionPolicy, int | None]:
        """The policy the server judges by (with this machine's deployment settings)."""
        found = self.connection.get("/policy")
        if not isinstance(found, dict) or not isinstance(found.get("document"), str):
            raise ServerResponseError(f"{self.connection.url} answered no policy document")
        version = found.get("version")
        source = f"the server's policy (version {version})" if version else "the server's policy"
        parsed = parse_document(found["document"], source)
        return governed_by(parsed, self.settings.policy), version

    def policy_record(self, version: int | None = None) -> PolicyRecord:
        if version is not None:
            found = self.connection.get(f"/policy/versions/{int(version)}")
            return decode(PolicyRecord, found, "policy")
        record = self.connection.get("/policy").get("record")
        if record is None:
            raise PolicyNotFoundError(f"the store of {self.connection.url} holds no shared policy")
        return decode(PolicyRecord, record, "policy")

    def policy_history(self) -> list[PolicyRecord]:
        return decode_list(PolicyRecord, self.connection.get("/policy/versions"), "policy")

    def apply_policy(
        self,
        document: str,
        *,
        source: str = "the policy",
        reason: str = "",
        actor: str | None = None,
    ) -> tuple[PolicyRecord, bool]:
        """As ``Client.apply_policy``; checked here first, so an error names ``source`` and
        its line. The server records the signed-in admin as the author (``actor`` is not
        sent)."""
        text = canonical(parse_document(document, source))
        found = self.connection.post("/policy", {"document": text, "reason": reason})
        if not isinstance(found, dict):
            raise ServerResponseError(f"{self.connection.url} answered no policy record")
        return decode(PolicyRecord, found.get("record"), "policy"), bool(found.get("created"))

    # -- users, roles and tokens (an admin's) -------------------------------------------

    def users(self) -> list[User]:
        return decode_list(User, self.connection.get("/users"), "users")

    def get_user(self, name: str) -> User:
        return decode(User, self.connection.get(f"/users/{segment(name)}"), "user")

    def add_user(
        self, name: str, roles: Iterable[str | RoleGrant] = (), *, actor: str | None = None
    ) -> User:
        """As ``Client.add_user``; the server records the signed-in admin (``actor`` is not
        sent), here and in the methods below."""
        body = {"name": name, "roles": [str(role) for role in roles]}
        return decode(User, self.connection.post("/users", body), "user")

    def grant_role(
        self, name: str, role: str, environment: str | None = None, *, actor: str | None = None
    ) -> User:
        body = {"role": role, "environment": environment}
        found = self.connection.post(f"/users/{segment(name)}/roles", body, repeatable=True)
        return decode(User, found, "user")

    def revoke_role(
        self, name: str, role: str, environment: str | None = None, *, actor: str | None = None
    ) -> User:
        body = {"role": role, "environment": environment}
        found = self.connection.post(f"/users/{segment(name)}/roles/revoke", body)
        return decode(User, found, "user")

    def disable_user(self, name: str, *, actor: str | None = None) -> User:
        found = self.connection.post(f"/users/{segment(name)}/disable", {}, repeatable=True)
        return decode(User, found, "user")

    def create_token(
        self,
        user: str,
        label: str = "",
        expires_in_days: float | None = None,
        *,
        actor: str | None = None,
    ) -> tuple[ApiToken, str]:
        body = {"user": user, "label": label, "expires_in_days": expires_in_days}
        found = self.connection.post("/tokens", body)
        if not isinstance(found, dict) or not isinstance(found.get("secret"), str):
            raise ServerResponseError(f"{self.connection.url} answered no token")
        return decode(ApiToken, found.get("token"), "token"), found["secret"]

    def authenticate(self, secret: str) -> User:
        """The user a token's secret signs in, as the server says (``AuthenticationError``
        otherwise): how ``serve --auth`` checks callers' tokens against a team server."""
        if not isinstance(secret, str) or not secret.strip():
            raise AuthenticationError("no API token was given", reason="missing")
        asking = ServerConnection(self.connection.url, secret.strip(), patient=False)
        try:
            return signed_in_user(asking)
        finally:
            asking.close()

    def tokens(self, user: str | None = None) -> list[ApiToken]:
        return decode_list(ApiToken, self.connection.get("/tokens", {"user": user}), "tokens")

    def revoke_token(self, token_id: int) -> ApiToken:
        found = self.connection.post(f"/tokens/{int(token_id)}/revoke", {}, repeatable=True)
        return decode(ApiToken, found, "token")


def signed_in_user(connection: ServerConnection) -> User:
    """The user ``connection``'s token signs in, with their roles (``GET /whoami``)."""
    found = connection.get("/whoami")
    # whoami names the user and their roles; the rest of the record is the admin's.
    known = {"created_at": 0.0, "created_by": "", **found}
    return decode(User, known, "whoami")

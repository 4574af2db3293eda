"""Bearer tokens for the prediction server (``modelrail serve --auth``).

A request signs in with a personal API token (``modelrail tokens create``) of a user who may
read the environment served (any role granted there or everywhere: a viewer in prod may ask
prod's models, a member of staging may not). ``/health`` and ``/ready`` stay open for load
balancers; ``/metrics`` is guarded only when asked (``--metrics-auth``), since scrapers are
often configured apart from clients.

Tokens are checked against the store, off the event loop, and a token found good is trusted
for ``ttl_s`` seconds (5 by default) without asking the store again: the hot path pays a
dictionary lookup, and a revoked token stops working within those seconds. Refusals are
401 (no token, or one that signs nobody in) and 403 (a user without a role there); a token is
never repeated in an answer or a log.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelrail.entities import User
from modelrail.errors import AuthenticationError, PermissionDeniedError
from modelrail.permissions import require

__all__ = ["Refusal", "TokenGuard"]

# Tokens remembered at most: enough for every client of a team, bounded against junk.
_MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


@dataclass
class TokenGuard:
    """Signs a request in from its ``Authorization`` header (``authenticate``: the store's
    check of a token's secret, e.g. ``Client.authenticate``)."""

    authenticate: Callable[[str], User]
    environment: str | None
    ttl_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    # sha256 of a token found good -> (trusted until, its user's name)
    _good: dict[str, tuple[float, str]] = field(default_factory=dict)

    async def refusal(self, headers: list[tuple[bytes, bytes]]) -> Refusal | None:
        """None when the request may go on, else why not."""
        secret = _bearer(headers)
        if secret is None:
            return Refusal(401, "this server needs 'Authorization: Bearer <token>'")
        key = hashlib.sha256(secret.encode()).hexdigest()
        known = self._good.get(key)
        now = self.clock()
        if known is not None and known[0] > now:
            return None
        try:
            user = await asyncio.to_thread(self.authenticate, secret)
            require(user, "read", self.environment)
        except AuthenticationError as exc:
            self._good.pop(key, None)
            return Refusal(401, exc.message)
        except PermissionDeniedError as exc:
            self._good.pop(key, None)
            return Refusal(403, exc.message)
        if len(self._good) >= _MAX_REMEMBERED:
            self._good.clear()
        self._good[key] = (now + self.ttl_s, user.name)
        return None

    def user_name(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """Who a request that ``refusal`` let through signed in as (labels record it)."""
        secret = _bearer(headers)
        if secret is None:
            return None
        known = self._good.get(hashlib.sha256(secret.encode()).hexdigest())
        return known[1] if known is not None else None


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            secret = secret.strip()
            if scheme.lower() == "bearer" and secret and secret.isprintable():
                return secret
            return None
    return None

"""Who is looking at the dashboard, and what they may do there.

Which rule holds is decided by the store, on every request:

* **The store has users** (a team; ``modelrail users add``): everyone signs in, and reading
  needs the ``read`` permission (every role has it). A person signs in at /login with a
  personal API token (the session cookie then names the user, never the token), a script
  sends ``Authorization: Bearer <token>`` with each request, and behind a single sign-on
  proxy the proxy's user header signs each request in (only from a trusted proxy address,
  see ``modelrail.server.auth.TrustedProxy``). The user is read afresh on every request, so
  a disabled user is out at once and a new role counts at once. Every action is offered
  only when the user's roles allow it in that environment, every change checks it again
  (403 naming the missing permission), and the history records that user.
* **The store has no users** (one person's project): reading is open and changes are
  recorded as the local user (``MODELRAIL_USER``, else the system user), as the command
  line does. With ``--token`` a change needs that token: the /login form, or a bearer.

Users are never deleted (only disabled), so once a store has had a user it keeps the first
rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from starlette.requests import Request

from modelrail.client import Client
from modelrail.entities import User
from modelrail.errors import (
    AuthenticationError,
    LoginRequiredError,
    ModelrailError,
    TokenNotFoundError,
    UserNotFoundError,
)
from modelrail.permissions import DEFAULT_PERMISSIONS, Permissions, require
from modelrail.permissions import may as allows
from modelrail.server.auth import bearer_token, sign_in_if_offered
from modelrail.ui.auth import BY_BEARER, BY_PROXY, BY_SESSION, Session
from modelrail.ui.state import PeopleClients, UiState


@dataclass(frozen=True)
class Viewer:
    """Who a request comes from. ``team``: the store has users, so ``user`` is the
    signed-in user (None: nobody is signed in); otherwise ``user`` is None and ``name`` is
    the local user, who may do everything. ``via`` says how they were recognised
    (``session``, ``bearer``, ``proxy``; '' for nobody, or the local user without the
    dashboard's token)."""

    name: str | None
    team: bool
    user: User | None = None
    via: str = ""
    permissions: Permissions = field(default=DEFAULT_PERMISSIONS, repr=False)
    # Through a team server: the client signed in as this viewer (reads and changes go as
    # them; the server checks their roles again).
    client: Client | None = field(default=None, repr=False, compare=False)

    @property
    def signed_in(self) -> bool:
        return self.user is not None

    @property
    def roles(self) -> str:
        """The user's roles as people say them: ``member, approver in prod``."""
        if self.user is None:
            return ""
        held = [g.role + (f" in {g.environment}" if g.environment else "") for g in self.user.roles]
        return ", ".join(held) or "no role"

    def may(self, action: str, environment: str | None = None) -> bool:
        """Whether to offer ``action`` (in ``environment``)."""
        if not self.team:
            return True
        user = self.user
        return (
            user is not None
            and not user.disabled
            and allows(user.roles, action, environment, permissions=self.permissions)
        )

    def require(self, action: str, environment: str | None = None) -> None:
        """Raise unless this viewer may do ``action``: ``LoginRequiredError`` (401) when
        nobody is signed in, ``PermissionDeniedError`` (403) naming the missing role."""
        if not self.team:
            return
        if self.user is None:
            raise LoginRequiredError(
                "sign in first: this dashboard's store has users, so each person signs in "
                "with a personal API token (/login)"
            )
        require(self.user, action, environment, permissions=self.permissions)

    def refusal(self, action: str, environment: str | None = None) -> str | None:
        """Why this viewer may not do ``action``, or None when they may."""
        try:
            self.require(action, environment)
        except ModelrailError as exc:
            return exc.message
        return None


def identify(state: UiState, request: Request, session: Session) -> Viewer:
    """The viewer of ``request``: by a trusted proxy's header or a personal bearer token
    (each failure counted by the throttle), else by the session. Blocking (it reads the
    store): run it in a worker thread."""
    client = state.client()
    if state.people is not None:
        return _through_server(state, state.people, request, session)
    if not state.has_users():
        # A proxy naming someone, where the store has nobody: refused, and counted. (A
        # bearer here is the dashboard's own token, for ``auth.require_write``.)
        sign_in_if_offered(client, state.throttle, request, tokens=False)
        via = BY_SESSION if session.token else ""
        return Viewer(client.user, team=False, via=via)
    permissions = client.policy.permissions
    proxy = state.throttle.proxy
    user = sign_in_if_offered(client, state.throttle, request)
    if user is not None:
        by_proxy = proxy is not None and proxy.user_name(request) is not None
        via = BY_PROXY if by_proxy else BY_BEARER
        return Viewer(user.name, team=True, user=user, via=via, permissions=permissions)
    if session.user is not None and _token_in_force(client, session):
        try:
            user = client.get_user(session.user)
        except UserNotFoundError:
            user = None
        if user is not None and not user.disabled:
            return Viewer(user.name, team=True, user=user, via=BY_SESSION, permissions=permissions)
    return Viewer(None, team=True, permissions=permissions)


def _token_in_force(client: Client, session: Session) -> bool:
    """Whether the token the session signed in with is still its user's and in force: a
    revoked or expired token ends the session on the next request."""
    if session.token_id is None:
        return False
    try:
        token = client.api_token(session.token_id)
    except TokenNotFoundError:
        return False
    return token.user == session.user and token.state(time.time()) == "active"


def _through_server(
    state: UiState, people: PeopleClients, request: Request, session: Session
) -> Viewer:
    """The viewer through a team server: a bearer token, else the token the session signed
    in with (kept in this process), each checked with the server on every request, so a
    revoked token or a disabled user is out at once."""
    permissions = state.client().policy.permissions
    offered = "authorization" in request.headers
    token = bearer_token(request) if offered else people.token_of(session.id)
    if token is None:
        return Viewer(None, team=True, permissions=permissions)
    mine = people.client_as(token)
    try:
        if offered:
            user = state.throttle.counted(
                state.throttle.address(request), lambda: mine.authenticate(token)
            )
        else:
            user = mine.authenticate(token)
    except AuthenticationError:
        if offered:
            raise
        people.forget(session.id)
        return Viewer(None, team=True, permissions=permissions)
    via = BY_BEARER if offered else BY_SESSION
    return Viewer(user.name, team=True, user=user, via=via, permissions=permissions, client=mine)

"""Signing in to the dashboard, sessions, and which forms are a session's own.

Who signs in, and what they may do, is ``access``'s to decide. This module keeps the
session: a random id in an HttpOnly, SameSite=Strict cookie (Path=/, Secure over https),
signed with an HMAC keyed by the dashboard's ``--token`` (random per process without one),
naming the user who signed in at /login with a personal API token, never the token itself.
A signed-in session lasts at most ``SESSION_MAX_AGE_S``; signing in or out starts a new
one. On a store without users the /login form takes the dashboard's ``--token`` instead,
and the session only remembers that it was given.

Every form carries a CSRF token derived from the session id, and every POST must send the
token of its own session: a form made on another site, or one whose token belongs to
another session, is refused with 403. A request that signs in with
``Authorization: Bearer`` needs no form token, since no browser sends that header on its
own. The ``Host`` and ``Origin`` checks are in ``guard``. Failed sign-ins at /login count
against the address (``modelrail.server.auth.FailureThrottle``), as on the team server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelrail.entities import ApiToken, User
from modelrail.errors import ForbiddenError, InvalidInputError, LoginRequiredError
from modelrail.ui.state import Page

SESSION_COOKIE = "modelrail_ui_session"
CSRF_FIELD = "csrf_token"
# A signed-in session ends after this long; the person signs in again.
SESSION_MAX_AGE_S = 12 * 3600
# How a viewer was recognised (``access.Viewer.via``).
BY_SESSION, BY_BEARER, BY_PROXY = "session", "bearer", "proxy"
_ANONYMOUS = "a"
_TOKEN = "t"
_USER = "u"
_TOKEN_ID = "~"  # outside base64's URL-safe alphabet and the cookie's '.'-separated fields


@dataclass(frozen=True)
class Session:
    """One visitor's session: ``user`` names who signed in with a personal token (a store
    with users), ``token`` says the dashboard's ``--token`` was given (a store without
    users); ``issued`` is when (Unix seconds); ``new`` when this response starts it."""

    id: str
    user: str | None = None
    token: bool = False
    issued: int = 0
    new: bool = False
    # The personal API token ``user`` signed in with: the session ends when it is revoked
    # or expires (``access.identify`` checks it on every request).
    token_id: int | None = None


class Sessions:
    """Starts, signs and reads sessions, and derives their CSRF tokens, with one key.
    ``clock`` gives the time in seconds (tests move it)."""

    def __init__(self, token: str | None, *, clock: Callable[[], float] = time.time) -> None:
        if token is None:
            self._key = secrets.token_bytes(32)
        else:
            self._key = hashlib.sha256(b"modelrail-ui-session-2\0" + token.encode()).digest()
        self._clock = clock

    def start(
        self, *, user: str | None = None, token: bool = False, token_id: int | None = None
    ) -> Session:
        issued = int(self._clock())
        return Session(secrets.token_hex(16), user, token, issued, new=True, token_id=token_id)

    def read(self, request: Request) -> Session | None:
        """The session of a valid cookie, else None (a signed-in one only while young)."""
        raw = request.cookies.get(SESSION_COOKIE, "")
        payload, _, signature = raw.rpartition(".")
        parts = payload.split(".")
        if len(parts) != 3 or len(parts[0]) != 32 or not parts[2].isdigit():
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        session_id, who, issued_text = parts
        issued = int(issued_text)
        if who == _ANONYMOUS:
            return Session(session_id, issued=issued)
        if not 0 <= self._clock() - issued < SESSION_MAX_AGE_S:
            return None
        if who == _TOKEN:
            return Session(session_id, token=True, issued=issued)
        if not who.startswith(_USER):
            return None
        encoded, _, token_text = who.removeprefix(_USER).partition(_TOKEN_ID)
        if not token_text.isdigit():
            return None  # a session from before sessions named their token: sign in again
        try:
            user = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return Session(session_id, user=user, issued=issued, token_id=int(token_text))

    def cookie(self, session: Session, *, secure: bool) -> tuple[bytes, bytes]:
        """The ``Set-Cookie`` header that keeps ``session``."""
        if session.user is not None:
            who = _USER + base64.urlsafe_b64encode(session.user.encode()).decode().rstrip("=")
            who += f"{_TOKEN_ID}{session.token_id or 0}"
        else:
            who = _TOKEN if session.token else _ANONYMOUS
        payload = f"{session.id}.{who}.{session.issued}"
        carrier = Response()
        carrier.set_cookie(
            SESSION_COOKIE,
            f"{payload}.{self._sign(payload)}",
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )
        return carrier.raw_headers[-1]

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._key, b"csrf\0" + session.id.encode(), hashlib.sha256).hexdigest()

    def check_form(self, session: Session, given: str) -> None:
        """Raise unless ``given`` is the CSRF token of ``session``."""
        if not given:
            raise ForbiddenError(
                "this form carries no CSRF token: send it from the dashboard's own pages "
                "(reload the page, then send the form again)"
            )
        if session.new or not hmac.compare_digest(
            given.encode(), self.csrf_token(session).encode()
        ):
            raise ForbiddenError(
                "this form's CSRF token does not belong to your session (expired, or made "
                "elsewhere): reload the page, then send the form again; nothing was changed"
            )

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_write(page: Page) -> bool:
    """Raise unless this request may change what the environments hold at all (which
    changes, ``access`` checks); True when it signed in as a bearer, so it needs no form
    token. With users: someone must be signed in. Without: the dashboard's ``--token``,
    when it has one, given at /login or as a bearer."""
    viewer = page.viewer
    if viewer.team:
        viewer.require("read")  # nobody signed in: 401
        return viewer.via == BY_BEARER
    token = page.state.token
    if token is None:
        return False
    given = _bearer(page.request)
    if given is not None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ForbiddenError("the bearer token is wrong")
        return True
    if viewer.via == BY_SESSION:
        return False
    raise LoginRequiredError("this dashboard needs its token for changes: log in first (/login)")


def login_form(page: Page) -> Response:
    return page.render("login.html", title="Sign in", next=_safe_next(page.param("next")))


def login(page: Page, sessions: Sessions) -> Response:
    """Sign in with a personal API token (a store with users) or the dashboard's token (a
    store without), counting a failure against the address; then start a new session."""
    throttle = page.state.throttle
    address = throttle.address(page.request)
    given = page.field("token")
    people = page.state.people
    if people is not None:  # through a team server: the server checks the token
        user: User = throttle.counted(address, lambda: people.client_as(given).authenticate(given))
        session = sessions.start(user=user.name, token_id=0)
        people.remember(session.id, given)
    elif page.viewer.team:
        signed: tuple[ApiToken, User] = throttle.counted(
            address, lambda: page.client.sign_in(given)
        )
        session = sessions.start(user=signed[1].name, token_id=signed[0].id)
    else:
        token = page.state.token
        if token is None:
            raise InvalidInputError(
                "nobody signs in to this dashboard: its store has no users, so changes are "
                f"recorded as {page.viewer.name} (MODELRAIL_USER); add users with 'modelrail "
                "users add' to have each person sign in with a personal API token"
            )
        throttle.check(address)
        if not hmac.compare_digest(given.encode(), token.encode()):
            throttle.failed(address)
            raise ForbiddenError("wrong token: nothing was changed")
        session = sessions.start(token=True)
    response = RedirectResponse(_safe_next(page.field("next")), status_code=303)
    secure = page.request.state.origin.scheme == "https"  # as reached, perhaps by a proxy
    response.raw_headers.append(sessions.cookie(session, secure=secure))
    return response


def logout(page: Page) -> Response:
    session: Session | None = getattr(page.request.state, "session", None)
    if page.state.people is not None and session is not None:
        page.state.people.forget(session.id)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _safe_next(value: str | None) -> str:
    """Only a path on this server: never another site after signing in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value

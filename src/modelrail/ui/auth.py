"""Who may change things, who they are, and which forms are their own.

Reading is open. A write (promote, approve, reject, roll back) needs the configured token
when the server has one: sent as ``Authorization: Bearer TOKEN``, or remembered by the
session cookie the /login form sets. The login form may also name the person acting, so a
second person can approve a request from the same server; otherwise the server's own user
acts, as ``MODELRAIL_USER`` does on the command line.

Every visitor has a session: a random id in an HttpOnly, SameSite=Strict cookie (Path=/,
Secure over https), signed with an HMAC keyed by the token (random per process without
one), holding the name given at login but never the token itself. Logging in starts a new
session. Every form carries a CSRF token derived from the session id, and every POST must
send the token of its own session: a form made on another site, or one whose token belongs to
another session, is refused with 403. A request that proves the server's token as a bearer
needs no form token, since no browser sends that header on its own. The ``Host`` and
``Origin`` checks are in ``guard``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelrail.errors import ForbiddenError, LoginRequiredError
from modelrail.ui.state import Page

SESSION_COOKIE = "modelrail_ui_session"
CSRF_FIELD = "csrf_token"
_MAX_NAME = 128
_ANONYMOUS = "a"
_NAMED = "u"


@dataclass(frozen=True)
class Session:
    """One visitor's session: ``name`` is None until the login form is sent ('' when it
    named nobody); ``new`` when this response starts it."""

    id: str
    name: str | None = None
    new: bool = False

    @property
    def logged_in(self) -> bool:
        return self.name is not None


class Sessions:
    """Starts, signs and reads sessions, and derives their CSRF tokens, with one key."""

    def __init__(self, token: str | None) -> None:
        if token is None:
            self._key = secrets.token_bytes(32)
        else:
            self._key = hashlib.sha256(b"modelrail-ui-session\0" + token.encode()).digest()

    def start(self, name: str | None = None) -> Session:
        return Session(secrets.token_hex(16), name, new=True)

    def read(self, request: Request) -> Session | None:
        """The session of a valid cookie, else None."""
        raw = request.cookies.get(SESSION_COOKIE, "")
        payload, _, signature = raw.rpartition(".")
        session_id, _, who = payload.partition(".")
        if len(session_id) != 32 or not hmac.compare_digest(
            signature.encode(), self._sign(payload).encode()
        ):
            return None
        if who == _ANONYMOUS:
            return Session(session_id)
        try:
            encoded = who.removeprefix(_NAMED)
            name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return Session(session_id, name)

    def cookie(self, session: Session, *, secure: bool) -> tuple[bytes, bytes]:
        """The ``Set-Cookie`` header that keeps ``session``."""
        if session.name is None:
            who = _ANONYMOUS
        else:
            who = _NAMED + base64.urlsafe_b64encode(session.name.encode()).decode().rstrip("=")
        payload = f"{session.id}.{who}"
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
    """Raise unless this request may change what the environments hold; True when it
    proved the server's token as a bearer (so it needs no form token)."""
    token = page.state.token
    if token is None:
        return False
    given = _bearer(page.request)
    if given is not None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ForbiddenError("the bearer token is wrong")
        return True
    if page.logged_in:
        return False
    raise LoginRequiredError("this server needs its token for changes: log in first (/login)")


def login_form(page: Page) -> Response:
    return page.render("login.html", title="Log in", next=_safe_next(page.param("next")))


def login(page: Page, sessions: Sessions) -> Response:
    """Check the token, then start a new session under the name given."""
    token = page.state.token
    if token is not None and not hmac.compare_digest(page.field("token").encode(), token.encode()):
        raise ForbiddenError("wrong token: nothing was changed")
    name = page.field("name")[:_MAX_NAME]
    response = RedirectResponse(_safe_next(page.field("next")), status_code=303)
    secure = page.request.state.origin.scheme == "https"  # as reached, perhaps by a proxy
    response.raw_headers.append(sessions.cookie(sessions.start(name), secure=secure))
    return response


def logout(page: Page) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _safe_next(value: str | None) -> str:
    """Only a path on this server: never another site after logging in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value

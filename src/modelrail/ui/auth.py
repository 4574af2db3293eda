"""Who may change things, and who they are.

Reading is open. A write (promote, approve, reject, roll back) needs the configured token
when the server has one: sent as ``Authorization: Bearer TOKEN``, or remembered by the
session cookie the /login form sets (HttpOnly, SameSite=Strict). The login form may also
name the person acting, so a second person can approve a request from the same server;
otherwise the server's own user acts, as ``MODELRAIL_USER`` does on the command line.

The cookie holds the name and an HMAC of it keyed by the token, never the token itself.
Without a token the key is random per process: such a cookie only carries a name.
Every POST must come from the dashboard's own pages (``Origin`` / ``Sec-Fetch-Site``), so
another site cannot make a browser promote a model on a server without a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from modelrail.errors import ForbiddenError, LoginRequiredError
from modelrail.ui.state import Page

SESSION_COOKIE = "modelrail_ui_session"
_MAX_NAME = 128


def session_key(token: str | None) -> bytes:
    if token is None:
        return secrets.token_bytes(32)
    return hashlib.sha256(b"modelrail-ui-session\0" + token.encode()).digest()


def _sign(key: bytes, name: str) -> str:
    return hmac.new(key, name.encode(), hashlib.sha256).hexdigest()


def session_value(key: bytes, name: str) -> str:
    encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
    return f"{encoded}.{_sign(key, name)}"


def read_session(key: bytes, request: Request) -> str | None:
    """The name in a valid session cookie ('' when the login named nobody), else None."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or "." not in raw:
        return None
    encoded, signature = raw.rsplit(".", 1)
    try:
        name = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return name if hmac.compare_digest(signature, _sign(key, name)) else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check_same_origin(request: Request) -> None:
    """Refuse a POST that a page of another site made the browser send."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise ForbiddenError("this form was sent from another site; use the dashboard's own pages")
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    if origin and host and origin.split("://", 1)[-1] != host:
        raise ForbiddenError(f"this form was sent from {origin}, not from this dashboard")


def require_write(page: Page, key: bytes) -> None:
    """Raise unless this request may change what the environments hold."""
    token = page.state.token
    if token is None:
        return
    given = _bearer(page.request)
    if given is not None:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ForbiddenError("the bearer token is wrong")
        return
    if page.logged_in:
        return
    raise LoginRequiredError("this server needs its token for changes: log in first (/login)")


def login_form(page: Page) -> Response:
    return page.render("login.html", title="Log in", next=_safe_next(page.param("next")))


def login(page: Page, key: bytes) -> Response:
    token = page.state.token
    if token is not None and not hmac.compare_digest(page.field("token").encode(), token.encode()):
        raise ForbiddenError("wrong token: nothing was changed")
    name = page.field("name")[:_MAX_NAME]
    response = RedirectResponse(_safe_next(page.field("next")), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(key, name),
        httponly=True,
        samesite="strict",
        secure=page.request.url.scheme == "https",
        path="/",
    )
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

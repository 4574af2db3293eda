"""What one dashboard app holds: the way to the store, the token, the templates, and the
view of one request that every page function gets.

The app shares one ``Client`` between requests (its SQLAlchemy engine is thread-safe and
Starlette runs the page functions in a thread pool). It is opened on the first request
rather than when the app is made, so a store that is down when the server starts gives
503 pages, and the dashboard works again as soon as the store is back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse

if TYPE_CHECKING:
    from modelrail.client import Client

ClientFactory = Callable[[], "Client"]


class UiState:
    """One per app: created by ``create_app``, closed when the app shuts down."""

    def __init__(self, factory: ClientFactory, token: str | None, templates: Environment) -> None:
        self.token = token or None
        self.templates = templates
        self._factory = factory
        self._client: Client | None = None
        self._lock = threading.Lock()
        # Who acts when the login form named nobody: known once the store has been opened.
        self.default_user: str | None = None

    def client(self) -> Client:
        """The shared client, opened on first use; a failure is retried on the next call."""
        with self._lock:
            if self._client is None:
                self._client = self._factory()
                self.default_user = self._client.user
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class Page:
    """One request as the page functions see it: its parameters, its form fields, the
    store, who is acting, and rendering."""

    def __init__(self, request: Request, state: UiState, form: Mapping[str, list[str]]) -> None:
        self.request = request
        self.state = state
        self.form = form
        self.session_user: str | None = None
        self.logged_in = False

    @property
    def client(self) -> Client:
        return self.state.client()

    @property
    def actor(self) -> str:
        """Who a write is recorded as: the name given at login, else the server's user."""
        return self.session_user or self.client.user

    def param(self, name: str) -> str | None:
        value = self.request.query_params.get(name)
        return value if value not in (None, "") else None

    def params(self, name: str) -> list[str]:
        return [v for v in self.request.query_params.getlist(name) if v != ""]

    def field(self, name: str) -> str:
        values = self.form.get(name) or [""]
        return values[0].strip()

    def path_param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def render(self, template: str, /, *, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.state, self.request, template, status=status, page=self, **context)


def render(
    state: UiState,
    request: Request,
    template: str,
    /,
    *,
    status: int = 200,
    page: Page | None = None,
    **context: Any,
) -> HTMLResponse:
    acting = None
    if page is not None and page.session_user:
        acting = page.session_user
    elif state.default_user is not None:
        acting = state.default_user
    html = state.templates.get_template(template).render(
        request_path=request.url.path,
        login_next=return_path(request),
        acting_as=acting,
        logged_in=page.logged_in if page is not None else False,
        token_required=state.token is not None,
        csrf_token=getattr(request.state, "csrf_token", ""),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def return_path(request: Request) -> str:
    """Where logging in from this page leads back to: the page with its query string (the
    gates page needs its version and environment); after a refused form, the page the form
    was on (its same-origin Referer), since the form's own address only takes a POST."""
    if request.method in ("GET", "HEAD"):
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.headers.get("host") and referer.path:
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"

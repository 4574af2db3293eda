"""What one dashboard app holds: the way to the store, the token, the sign-in throttle,
the templates, and the view of one request that every page function gets.

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

from modelrail.server.auth import FailureThrottle

if TYPE_CHECKING:
    from modelrail.client import Client
    from modelrail.ui.access import Viewer

ClientFactory = Callable[[], "Client"]


class PeopleClients:
    """The dashboard through a team server: the personal token each session signed in with
    (in this process's memory only, never in a cookie), and a client per token."""

    MOST = 1024  # sessions remembered at most; the oldest are forgotten (they sign in again)

    def __init__(self, open_as: Callable[[str], Client]) -> None:
        self._open_as = open_as
        self._tokens: dict[str, str] = {}
        self._clients: dict[str, Client] = {}
        self._lock = threading.Lock()

    def remember(self, session_id: str, token: str) -> None:
        with self._lock:
            self._tokens[session_id] = token
            while len(self._tokens) > self.MOST:
                self._tokens.pop(next(iter(self._tokens)))

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._tokens.pop(session_id, None)

    def token_of(self, session_id: str) -> str | None:
        with self._lock:
            return self._tokens.get(session_id)

    def client_as(self, token: str) -> Client:
        with self._lock:
            client = self._clients.get(token)
            if client is None:
                if len(self._clients) >= self.MOST:
                    self._clients.pop(next(iter(self._clients))).close()
                client = self._clients[token] = self._open_as(token)
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


class UiState:
    """One per app: created by ``create_app``, closed when the app shuts down."""

    def __init__(
        self,
        factory: ClientFactory,
        token: str | None,
        templates: Environment,
        throttle: FailureThrottle | None = None,
        people: PeopleClients | None = None,
    ) -> None:
        self.token = token or None
        # Through a team server: each person's own client, signed in with their own token.
        self.people = people
        self.templates = templates
        # Failed sign-ins per address; it also knows the trusted single sign-on proxy.
        self.throttle = throttle if throttle is not None else FailureThrottle()
        self._factory = factory
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._has_users = False

    def client(self) -> Client:
        """The shared client, opened on first use; a failure is retried on the next call."""
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def has_users(self) -> bool:
        """Whether the store has users (then everyone signs in, see ``access``). Users are
        never deleted, so once it has, it is not asked again. Through a team server, yes."""
        if self.people is not None:
            return True
        if not self._has_users:
            self._has_users = bool(self.client().users())
        return self._has_users

    def close(self) -> None:
        if self.people is not None:
            self.people.close()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class Page:
    """One request as the page functions see it: its parameters, its form fields, the
    store, who is looking (``viewer``, see ``access``), and rendering."""

    def __init__(
        self, request: Request, state: UiState, form: Mapping[str, list[str]], viewer: Viewer
    ) -> None:
        self.request = request
        self.state = state
        self.form = form
        self.viewer = viewer

    @property
    def client(self) -> Client:
        """The viewer's own client through a team server (what they do is done as them),
        else the dashboard's."""
        own = self.viewer.client
        return own if own is not None else self.state.client()

    @property
    def actor(self) -> str:
        """Who a change is recorded as: the signed-in user, or the local user of a store
        without users."""
        if self.viewer.name is None:  # access admits no change from nobody
            raise AssertionError("a change reached a page with nobody signed in")
        return self.viewer.name

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
        return render(self.state, self.request, template, status=status, **context)


def render(
    state: UiState,
    request: Request,
    template: str,
    /,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    html = state.templates.get_template(template).render(
        request_path=request.url.path,
        login_next=return_path(request),
        viewer=viewer,
        acting_as=viewer.name if viewer is not None else None,
        may=viewer.may if viewer is not None else _nothing,
        token_required=state.token is not None,
        csrf_token=getattr(request.state, "csrf_token", ""),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def _nothing(action: str, environment: str | None = None) -> bool:
    """What may be offered before anyone is known (a page of an error before that)."""
    return False


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

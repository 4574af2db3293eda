"""The dashboard as an ASGI app: its routes, and the one place errors become pages.

``create_app(settings_or_client_factory, token=..., public_names=..., throttle=...)``
returns a Starlette app; the ``modelrail ui`` command serves it with uvicorn. Every page
function is plain synchronous code that Starlette runs in its thread pool. Before it,
``guard`` refuses a foreign ``Host`` and gives the request its session; this module then
checks where a form came from, finds who is looking (``access.identify``: signing in,
reading needs the ``read`` permission on a store with users), checks that a change may be
made at all (``auth.require_write``) and the form's CSRF token, and maps every
``ModelrailError`` to its ``http_status`` (a wrong URL to 404) on a readable page, never a
traceback. Which change a user may make the page functions check (``pages_models``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelrail.config import Settings
from modelrail.errors import GateFailedError, InvalidInputError, ModelrailError, ThrottledError
from modelrail.server.auth import FailureThrottle
from modelrail.ui import (
    access,
    auth,
    guard,
    pages_batch,
    pages_card,
    pages_compare,
    pages_models,
    pages_monitoring,
    pages_runs,
    pages_tracker,
)
from modelrail.ui.state import ClientFactory, Page, PeopleClients, UiState, render
from modelrail.ui.templating import make_environment

if TYPE_CHECKING:
    from modelrail.client import Client

MAX_FORM_BYTES = 64 * 1024
_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_TITLES = {
    400: "Bad request",
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    429: "Too many failed sign-ins",
}
# Paths anyone may open on a store with users: signing in and out.
_OPEN_PATHS = frozenset({"/login", "/logout"})

PageFunction = Callable[[Page], Response]


def create_app(
    source: Settings | ClientFactory,
    *,
    token: str | None = None,
    public_names: str | None = None,
    throttle: FailureThrottle | None = None,
    people: PeopleClients | None = None,
) -> Starlette:
    """The dashboard for the store of ``source``: settings (a ``Client`` is opened from them
    on the first request) or a function returning a ``Client``. Who signs in and what they
    may do follows ``access``: on a store without users, ``token`` is what changes need
    (``Authorization: Bearer`` or the /login form). ``throttle`` counts failed sign-ins per
    address and names the trusted single sign-on proxy, if any (default: no proxy).
    ``public_names`` (else the settings' ``[ui] public_name``) are the names it is reached
    by besides its own addresses (see ``guard``). ``people``: the dashboard runs through a
    team server, each person's requests made with their own token (see ``access``)."""
    if public_names is None and isinstance(source, Settings):
        public_names = source.ui_public_name
    names = guard.parse_public_names(public_names)
    factory = _factory(source)
    state = UiState(factory, token, make_environment(), throttle, people)
    sessions = auth.Sessions(state.token)

    def endpoint(function: PageFunction, *, write: bool = False) -> Callable[..., Any]:
        async def handle(request: Request) -> Response:
            form: dict[str, list[str]] = {}
            if request.method == "POST":
                guard.check_origin(request, request.state.origin)
                form = await _read_form(request)
            session: auth.Session = request.state.session
            viewer = await run_in_threadpool(access.identify, state, request, session)
            request.state.viewer = viewer
            page = Page(request, state, form, viewer)
            if viewer.team and request.url.path not in _OPEN_PATHS:
                if not viewer.signed_in and request.method in ("GET", "HEAD"):
                    return RedirectResponse(_login_path(request), status_code=303)
                viewer.require("read")  # nobody signed in: 401; no read permission: 403
            by_bearer = auth.require_write(page) if write else False
            if request.method == "POST" and not by_bearer:
                sessions.check_form(session, page.field(auth.CSRF_FIELD))
            return await run_in_threadpool(function, page)

        return handle

    def get(path: str, function: PageFunction) -> Route:
        return Route(path, endpoint(function), methods=["GET"])

    def post(path: str, function: PageFunction) -> Route:
        return Route(path, endpoint(function, write=True), methods=["POST"])

    routes: list[BaseRoute] = [
        Route("/health", _health, methods=["GET"]),
        get("/", pages_tracker.tracker),
        get("/runs/{run_id}", pages_runs.run_page),
        get("/runs/{run_id}/artifacts/{path:path}", pages_runs.artifact),
        get("/compare", pages_compare.compare),
        get("/models", pages_models.models),
        get("/models/{name}", pages_models.model_page),
        get("/models/{name}/versions/{version:int}", pages_models.version_page),
        get("/models/{name}/monitoring/{environment}", pages_monitoring.monitoring_page),
        get("/models/{name}/promote", pages_models.promote_check),
        post("/models/{name}/promote", pages_models.promote),
        get("/models/{name}/versions/{version:int}/card", pages_card.card_page),
        post("/models/{name}/versions/{version:int}/card", pages_card.edit_section),
        get("/models/{name}/rollback", pages_models.rollback_check),
        post("/models/{name}/rollback", pages_models.rollback),
        get("/requests/{request_id:int}/approve", pages_models.approve_check),
        post("/requests/{request_id:int}/approve", pages_models.approve),
        post("/requests/{request_id:int}/reject", pages_models.reject),
        get("/batch", pages_batch.batch),
        get("/batch/{run_id}", pages_batch.batch_run),
        get("/login", auth.login_form),
        Route(
            "/login",
            endpoint(lambda page: auth.login(page, sessions)),
            methods=["POST"],
        ),
        Route("/logout", endpoint(auth.logout), methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("modelrail.ui", "static")]), name="static"),
    ]

    def error_page(request: Request, exc: Exception) -> Response:
        return _error_page(state, request, exc)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    app = Starlette(
        routes=routes,
        exception_handlers={
            ModelrailError: error_page,
            HTTPException: error_page,
            Exception: error_page,
        },
        lifespan=lifespan,
    )
    app.add_middleware(guard.RequestGuard, sessions=sessions, public_names=names)
    app.add_middleware(_SecurityHeaders)
    app.state.ui = state
    return app


def _login_path(request: Request) -> str:
    """The sign-in page, leading back to this page afterwards."""
    query = request.url.query
    return "/login?" + urlencode({"next": request.url.path + (f"?{query}" if query else "")})


def _factory(source: Settings | ClientFactory) -> ClientFactory:
    if isinstance(source, Settings):
        settings = source

        def open_client() -> Client:
            from modelrail.client import Client

            return Client(settings=settings)

        return open_client
    return source


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _read_form(request: Request) -> dict[str, list[str]]:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_FORM_BYTES:
        raise InvalidInputError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInputError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _error_page(state: UiState, request: Request, exc: Exception) -> Response:
    """The one mapping from errors to statuses: ``http_status`` of a ModelrailError, the
    status of an HTTPException (unknown URL, wrong method), 500 for anything else."""
    gates: tuple[Any, ...] = ()
    if isinstance(exc, ModelrailError):
        status, message = exc.http_status, exc.message
        if isinstance(exc, GateFailedError):
            gates = exc.results
    elif isinstance(exc, HTTPException):
        status = exc.status_code
        message = "there is no such page" if status == 404 else str(exc.detail)
    else:  # Starlette raises it again after this page is sent, so uvicorn logs it
        status, message = 500, "internal error: the server's log has the details"
    title = _TITLES.get(status) or (
        "Store unavailable" if status == 503 else "Error" if status >= 500 else "Not possible"
    )
    response = render(
        state,
        request,
        "error.html",
        status=status,
        title=title,
        status_code=status,
        message=message,
        gates=gates,
        error_kind=type(exc).__name__,
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="modelrail"'
    if isinstance(exc, ThrottledError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


class _SecurityHeaders:
    """Pages load nothing but the app's own files, and no other site may frame them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                headers += [(name, value) for name, value in extra if name not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

"""The one place the team server turns errors into HTTP responses.

Every answer that is not a success is JSON ``{"error": message, "field": name or null}``,
plus what the error carries (the permission refused, the gate results). The status is the
error class's ``http_status``; nothing here looks at message text, and no body ever holds
a traceback. Anything that is not a ``ModelrailError`` is a bug: logged here, answered
with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from modelrail.errors import (
    AuthenticationError,
    GateFailedError,
    InvalidRequestError,
    ModelrailError,
    PermissionDeniedError,
    ThrottledError,
)
from modelrail.server.payload import to_json

log = logging.getLogger("modelrail.server")


def error_response(exc: ModelrailError) -> JSONResponse:
    """The JSON answer for a library error, with the status its class carries."""
    # ``kind`` lets a modelrail client raise the same class (and exit with its code).
    body: dict[str, Any] = {"error": exc.message, "field": _field(exc), "kind": type(exc).__name__}
    if exc.params:  # so a client can spell the parameters as its own front end does
        body["template"] = exc.template
        body["params"] = list(exc.params)
    headers: dict[str, str] = {}
    if isinstance(exc, PermissionDeniedError):
        body["permission"] = {"action": exc.action, "environment": exc.environment}
    elif isinstance(exc, GateFailedError):
        body["gates"] = to_json(list(exc.results))
    elif isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="modelrail"'
    elif isinstance(exc, ThrottledError):
        headers["Retry-After"] = str(exc.retry_after)
    status = exc.http_status if 400 <= exc.http_status <= 599 else 500
    return JSONResponse(body, status_code=status, headers=headers)


def _field(exc: ModelrailError) -> str | None:
    if isinstance(exc, InvalidRequestError):
        return exc.field
    if isinstance(exc, AuthenticationError | ThrottledError):
        return "Authorization"
    return exc.param  # the library parameter at fault, by its name


async def on_modelrail_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelrailError)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) as the same JSON."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": str(exc.detail), "field": None},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


async def on_unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug: logged with its traceback here, answered without one."""
    log.error("modelrail server: %s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal server error", "field": None}, status_code=500)


EXCEPTION_HANDLERS = {
    ModelrailError: on_modelrail_error,
    HTTPException: on_http_error,
    Exception: on_unexpected_error,
}

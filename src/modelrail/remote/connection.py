"""HTTP to a team server: JSON in and out, a bearer token, bounded waits, and the server's
errors raised again as the library's own classes (so the CLI exits with the same codes and a
Python caller catches the same exceptions as against a local store).

Reads are retried on a dropped connection; changes are not, unless the caller says the
request is safe to repeat. The token is sent only in the ``Authorization`` header and never
appears in an error message.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from modelrail.errors import (
    AuthenticationError,
    GateFailedError,
    InvalidRequestError,
    ModelrailError,
    PermissionDeniedError,
    ServerResponseError,
    ServerUnavailableError,
    ThrottledError,
    error_class,
)

__all__ = ["ServerConnection"]

API = "/api/v1"
TIMEOUT_S = 30.0
# Waits between the tries of a request that is safe to repeat: a server restarting behind
# a load balancer is back within seconds.
RETRY_WAITS_S = (0.2, 0.5, 1.0, 2.0)


class ServerConnection:
    """One team server at ``url`` (``http(s)://host:port``), signed in with ``token``."""

    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ServerUnavailableError(
                f"the server address {url!r} is not an http:// or https:// URL"
            )
        self.url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self._token = token
        self.timeout = timeout

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return self.call("GET", path, query=query, repeatable=True)

    def post(self, path: str, body: Mapping[str, Any], *, repeatable: bool = False) -> Any:
        return self.call("POST", path, body=body, repeatable=repeatable)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        repeatable: bool,
    ) -> Any:
        address = self.url + API + path
        present = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        if present:
            address += "?" + urllib.parse.urlencode(present, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        waits = RETRY_WAITS_S if repeatable else ()
        for attempt in range(len(waits) + 1):
            try:
                return self._send(method, address, data)
            except _Dropped as dropped:
                if attempt == len(waits):
                    raise ServerUnavailableError(
                        f"the modelrail server at {self.url} cannot be reached: {dropped}"
                    ) from None
                time.sleep(waits[attempt])
        raise AssertionError("unreachable")

    def _send(self, method: str, address: str, data: bytes | None) -> Any:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(address, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _json(response.read(), self.url)
        except urllib.error.HTTPError as refused:
            with refused:
                raise _server_error(
                    refused.code, refused.read(), self.url, refused.headers.get("Retry-After")
                ) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Dropped(str(reason)) from None


class _Dropped(Exception):
    """The request did not get an answer (refused, reset, timed out)."""


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _json(data: bytes, url: str) -> Any:
    try:
        return json.loads(data) if data else None
    except ValueError:
        raise ServerResponseError(
            f"{url} did not answer with JSON: is it a modelrail server?"
        ) from None


def _server_error(status: int, data: bytes, url: str, retry_after: str | None) -> ModelrailError:
    """The library error a server's error answer stands for."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        if status >= 500:
            return ServerUnavailableError(f"the modelrail server at {url} failed (HTTP {status})")
        return ServerResponseError(f"{url} answered HTTP {status}: is it a modelrail server?")
    if status >= 500 and body.get("kind") is None:
        return ServerUnavailableError(f"the modelrail server at {url} failed: {body['error']}")
    kind = error_class(str(body.get("kind")))
    error = _rebuilt(kind, status, body)
    if isinstance(error, ThrottledError):
        error.retry_after = int(retry_after) if retry_after and retry_after.isdigit() else 1
    return error


def _rebuilt(
    kind: type[ModelrailError] | None, status: int, body: dict[str, Any]
) -> ModelrailError:
    message = str(body["error"])
    field = body.get("field") if isinstance(body.get("field"), str) else None
    if kind is None:  # a server newer than this client: keep its status as the best guess
        return InvalidRequestError(message, field=field, status=status)
    error = kind.__new__(kind)
    params = body.get("params")
    names = tuple(str(p) for p in params) if isinstance(params, list) else ()
    template = body.get("template") if names and isinstance(body.get("template"), str) else None
    ModelrailError.__init__(error, template or message, params=names)
    error.http_status = status
    if isinstance(error, InvalidRequestError):
        error.field, error.rows = field, ()
    if isinstance(error, AuthenticationError):
        error.reason = "server"
    if isinstance(error, PermissionDeniedError):
        found = body.get("permission")
        permission: dict[str, Any] = found if isinstance(found, dict) else {}
        error.user = ""
        error.action = str(permission.get("action", ""))
        environment = permission.get("environment")
        error.environment = environment if isinstance(environment, str) else None
    if isinstance(error, GateFailedError):
        from modelrail.entities import GateResult
        from modelrail.remote.decode import decode_list

        error.results = tuple(decode_list(GateResult, body.get("gates", []), "gates"))
    return error

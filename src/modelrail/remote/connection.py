"""HTTP to a team server: JSON in and out, a bearer token, bounded waits, and the server's
errors raised again as the library's own classes (so the CLI exits with the same codes and a
Python caller catches the same exceptions as against a local store).

Reads are retried on a dropped connection; changes are not, unless the caller says the
request is safe to repeat. The token is sent only in the ``Authorization`` header and never
appears in an error message.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from modelrail.errors import (
    ArtifactNotFoundError,
    AuthenticationError,
    ConflictError,
    GateFailedError,
    InvalidRequestError,
    ModelrailError,
    PermissionDeniedError,
    ServerResponseError,
    ServerUnavailableError,
    StoreURLError,
    ThrottledError,
    error_class,
)
from modelrail.remote.keepalive import KeptConnections, direct_for

__all__ = ["ServerConnection", "segment"]

API = "/api/v1"
TIMEOUT_S = 30.0
# Waits between the tries of a request that is safe to repeat: a server restarting behind
# a load balancer is back within seconds.
RETRY_WAITS_S = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# Sent with the second and later tries of a request whose first try may have arrived.
RETRY_HEADER = "X-Modelrail-Retry"


class ServerConnection:
    """One team server at ``url`` (``http(s)://host:port``), signed in with ``token``."""

    def __init__(
        self, url: str, token: str, *, timeout: float = TIMEOUT_S, patient: bool = True
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise StoreURLError(f"the server address {url!r} is not an http:// or https:// URL")
        self.url = f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"
        self._token = token
        self.timeout = timeout
        # Whether a dropped request is tried again: not for a first contact such as a
        # login, where an address that does not answer is far likelier a typo than a restart.
        self.patient = patient
        # JSON requests reuse open connections, unless a proxy must carry them.
        self._kept = KeptConnections(self.url, timeout) if direct_for(self.url) else None

    @property
    def token(self) -> str:
        """The token this connection signs in with (for a child process; never shown)."""
        return self._token

    def close(self) -> None:
        """Close the connections kept open between requests."""
        if self._kept is not None:
            self._kept.close()

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return self.call("GET", path, query=query, repeatable=True)

    def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        repeatable: bool = False,
        marks_retry: bool = False,
    ) -> Any:
        """``repeatable``: safe to send again when the answer is lost; ``marks_retry``: say
        so in a header on the second and later tries (the server then checks for a first
        try that arrived)."""
        return self.call("POST", path, body=body, repeatable=repeatable, marks_retry=marks_retry)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        repeatable: bool,
        marks_retry: bool = False,
    ) -> Any:
        address = self.url + API + path
        present = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        if present:
            address += "?" + urllib.parse.urlencode(present, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        waits = RETRY_WAITS_S if repeatable and self.patient else ()
        for attempt in range(len(waits) + 1):
            try:
                retry = {RETRY_HEADER: str(attempt)} if marks_retry and attempt else {}
                return self._send(method, address, data, retry, reuse=repeatable)
            except _Dropped as dropped:
                if attempt == len(waits):
                    raise ServerUnavailableError(
                        f"the modelrail server at {self.url} cannot be reached: {dropped}"
                    ) from None
                time.sleep(waits[attempt])
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        address: str,
        data: bytes | None,
        extra: Mapping[str, str],
        *,
        reuse: bool,
    ) -> Any:
        """One try of a JSON request. ``reuse``: the request is safe to repeat, so it may go
        on a kept connection (see ``keepalive``); any other goes on a new one."""
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        headers.update(extra)
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._kept is not None:
            try:
                target = address[len(self.url) :]
                reply = self._kept.send(method, target, data, headers, reuse=reuse)
            except (OSError, http.client.HTTPException) as exc:
                raise _Dropped(str(exc) or type(exc).__name__) from None
            if reply.status >= 400:
                retry_after = reply.headers.get("Retry-After")
                raise _server_error(reply.status, reply.body, self.url, retry_after)
            return _json(reply.body, self.url)
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

    # -- bytes: streamed in chunks, never whole in memory; see modelrail.server.artifact_routes

    def head(self, path: str) -> Mapping[str, str] | None:
        """The headers answering ``HEAD path``; None when the server has nothing there (404).
        Retried on a dropped connection. An error answer to a HEAD has no body to say what
        went wrong, so it is asked again as a GET, whose JSON error is raised."""
        address = self.url + API + path
        for wait in (*RETRY_WAITS_S, None):
            try:
                try:
                    with self._open("HEAD", address, keep_refusal=True) as response:
                        return dict(response.headers.items())
                except urllib.error.HTTPError as refused:
                    refused.close()
                    if refused.code == 404:
                        return None
                with self._open("GET", address) as response:  # closed unread if it succeeds
                    return dict(response.headers.items())
            except _Dropped as dropped:
                if wait is None:
                    raise self._unreachable(dropped) from None
                time.sleep(wait)
        raise AssertionError("unreachable")

    def get_into(self, path: str, into: BinaryIO) -> bool:
        """Copy the body of ``GET path`` into ``into`` in chunks; False when the server has no
        such artifact (404). A connection dropped part way is continued from the bytes
        written so far (``Range: bytes=N-``; bytes a server sends again are skipped), so every
        byte is written once; the tries without progress are bounded as for other reads."""
        address = self.url + API + path
        written = 0
        progress = _Progress()
        while True:
            try:
                headers = {"Range": f"bytes={written}-"} if written else {}
                with self._open("GET", address, headers=headers) as response:
                    skip = written if response.status != 206 else 0
                    if response.status == 206 and not str(
                        response.headers.get("Content-Range", "")
                    ).startswith(f"bytes {written}-"):
                        raise ServerResponseError(
                            f"{self.url} answered a range of {path} that was not asked for"
                        )
                    expected = response.headers.get("Content-Length")
                    received = 0
                    while chunk := _read(response):
                        received += len(chunk)
                        if skip:
                            cut = min(skip, len(chunk))
                            chunk, skip = chunk[cut:], skip - cut
                        into.write(chunk)
                        written += len(chunk)
                    if expected is not None and expected.isdigit() and received < int(expected):
                        raise _Dropped(f"the answer ended after {received:,} of {expected} bytes")
                    return True
            except ArtifactNotFoundError:
                return False
            except _Dropped as dropped:
                progress.failed(written, dropped, self)

    def put_file(self, path: str, local: Path, size: int) -> Any:
        """Upload the ``size`` bytes of ``local`` to ``path`` (a ``PUT``, the file read in
        chunks), resumably: ask ``path/upload`` what the server holds, send the rest from
        there; after a dropped connection (or a 409 while the server finishes the lost
        request) ask again and continue. The tries without progress are bounded as for other
        reads. Returns the server's answer for the stored artifact."""
        address = self.url + API + path
        progress = _Progress()
        restarted = False
        while True:
            state = self.get(path + "/upload")
            if not isinstance(state, dict) or not isinstance(state.get("offset"), int):
                raise ServerResponseError(f"{self.url} answered {path}/upload without an offset")
            if state.get("stored"):
                return state
            offset = state["offset"] if 0 <= state["offset"] <= size else 0
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size - offset),
                "Upload-Offset": str(offset),
                "Upload-Length": str(size),
            }
            try:
                with local.open("rb") as source:
                    source.seek(offset)
                    body = _Slice(source, size - offset)
                    with self._open("PUT", address, data=body, headers=headers) as response:
                        answer = _json(_read_all(response), self.url)
                if isinstance(answer, dict) and answer.get("stored"):
                    return answer
                progress.failed(offset, _Dropped("the server kept only part of the body"), self)
            except (_Dropped, ConflictError) as problem:
                progress.failed(offset, problem, self)
            except InvalidRequestError as refused:
                # The bytes held from an earlier try did not match (the server deleted them):
                # once, send everything again; the file's own bytes failing is final.
                mismatch = refused.http_status == 422 and refused.field == "body"
                if not mismatch or offset == 0 or restarted:
                    raise
                restarted = True

    def _open(
        self,
        method: str,
        address: str,
        *,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        keep_refusal: bool = False,
    ) -> http.client.HTTPResponse:
        """The open response to one request (the caller reads and closes it); an error
        answer raised as the library's error (or as it came, with ``keep_refusal``), a
        request without an answer as ``_Dropped``."""
        sent = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/octet-stream, application/json",
            **(headers or {}),
        }
        request = urllib.request.Request(address, data=data, method=method, headers=sent)
        try:
            response: http.client.HTTPResponse = urllib.request.urlopen(
                request, timeout=self.timeout
            )
        except urllib.error.HTTPError as refused:
            if keep_refusal:
                raise
            with refused:
                raise _server_error(
                    refused.code, refused.read(), self.url, refused.headers.get("Retry-After")
                ) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _Dropped(str(getattr(exc, "reason", exc))) from None
        return response

    def _unreachable(self, dropped: Exception) -> ServerUnavailableError:
        return ServerUnavailableError(
            f"the modelrail server at {self.url} cannot be reached: {dropped}"
        )


_CHUNK = 1 << 20


class _Progress:
    """Bounds the tries of a transfer: as many tries in a row that move no bytes as a read
    gets (each waiting as a read does); a try that moved bytes starts the count again."""

    def __init__(self) -> None:
        self.best = 0
        self.stalled = 0

    def failed(self, position: int, problem: Exception, connection: ServerConnection) -> None:
        """Wait before the next try, or raise when too many moved nothing."""
        if position > self.best:
            self.best, self.stalled = position, 0
        else:
            self.stalled += 1
        if self.stalled > len(RETRY_WAITS_S):
            if isinstance(problem, ConflictError):
                raise problem
            raise connection._unreachable(problem) from None
        time.sleep(RETRY_WAITS_S[min(max(self.stalled - 1, 0), len(RETRY_WAITS_S) - 1)])


class _Slice:
    """The next ``left`` bytes of a file, as http.client reads a body: in blocks."""

    def __init__(self, source: BinaryIO, left: int) -> None:
        self._source = source
        self._left = left

    def read(self, size: int = -1) -> bytes:
        wanted = self._left if size < 0 else min(size, self._left)
        data = self._source.read(wanted)
        self._left -= len(data)
        return data


def _read(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read(_CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        raise _Dropped(str(exc) or type(exc).__name__) from None


def _read_all(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise _Dropped(str(exc) or type(exc).__name__) from None


class _Dropped(Exception):
    """The request did not get an answer (refused, reset, timed out)."""


def segment(value: str) -> str:
    """``value`` as one segment of a URL path (a model name, a reference, a run id)."""
    return urllib.parse.quote(value, safe="")


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

"""HTTP connections to a team server, kept open between requests.

A training loop logs metrics in many small requests; a TCP (and TLS) handshake for each would
cost more than the request. A connection idle for longer than ``IDLE_S`` is replaced before
use rather than trusted (the server closes idle connections after 30 s), as is one the other
end has closed: a request sent on a connection closed under it cannot tell "never arrived"
from "lost answer".

Where ``http_proxy``/``https_proxy`` applies to the server (and ``no_proxy`` does not exempt
it), ``direct_for`` says no, and the caller goes through ``urllib`` as before, which knows
proxies.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import time
import urllib.parse
import urllib.request
import weakref
from typing import Any

IDLE_S = 15.0
# How a kept connection that the other end closed shows when it is used.
_CLOSED_UNDER_US = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def direct_for(url: str) -> bool:
    """Whether requests to ``url`` go straight to it (no proxy configured for it)."""
    parsed = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    if parsed.scheme not in proxies:
        return True
    return bool(urllib.request.proxy_bypass(parsed.hostname or ""))


class Reply:
    """A whole answer: status, headers and body (read before the connection is reused)."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class KeptConnections:
    """Open connections to ``url``'s host, each used by one request at a time: a request
    takes an idle one (or makes one) and puts it back after reading the answer. Closed by
    ``close``, or when this object is collected."""

    def __init__(self, url: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname or ""
        self.port = parsed.port
        self.prefix = parsed.path.rstrip("/")
        self.timeout = timeout
        # (connection, when it was last used), most recent last.
        self._idle: list[tuple[_Connection, float]] = []
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._idle)

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
        *,
        reuse: bool = True,
    ) -> Reply:
        """``method target`` (a path and query under the server's URL) and its whole answer.

        ``reuse``: the request is safe to repeat, so it goes on a kept connection, and if
        that connection turns out closed under it (the other end may close it the moment it
        is taken), it is sent again once on a new one. Otherwise it goes on a new
        connection. Raises ``OSError`` or ``http.client.HTTPException`` when the request
        fails (its connection is then closed)."""
        connection, kept = self._take() if reuse else (self._new(), False)
        try:
            return self._exchange(connection, method, target, body, headers)
        except _CLOSED_UNDER_US:
            if not kept:
                raise
        return self._exchange(self._new(), method, target, body, headers)

    def _exchange(
        self,
        connection: _Connection,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> Reply:
        try:
            connection.send_request(method, self.prefix + target, body, headers)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.append((connection, time.monotonic()))
        return Reply(response.status, response.headers, data)

    def close(self) -> None:
        with self._lock:
            _close_all(self._idle)

    def _take(self) -> tuple[_Connection, bool]:
        """An idle connection still open (and True), or a new one (and False)."""
        now = time.monotonic()
        with self._lock:
            while self._idle:
                connection, used_at = self._idle.pop()
                if now - used_at <= IDLE_S and not _closed_by_peer(connection):
                    return connection, True
                connection.close()
        return self._new(), False

    def _new(self) -> _Connection:
        if self.https:
            context = ssl.create_default_context()
            return _SecureConnection(self.host, self.port, timeout=self.timeout, context=context)
        return _Connection(self.host, self.port, timeout=self.timeout)


class _Connection(http.client.HTTPConnection):
    """An ``HTTPConnection`` that writes a request's head and body to the socket at once:
    one segment (and one wake-up of the server) per small request instead of two."""

    _held: list[bytes] | None = None

    def send_request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> None:
        """As ``request``, the bytes it sends written in one call."""
        self._held = []
        try:
            self.request(method, url, body=body, headers=headers)
            data = b"".join(self._held)
        finally:
            self._held = None
        super().send(data)

    def send(self, data: Any) -> None:
        if self._held is not None and isinstance(data, bytes):
            self._held.append(data)
        else:
            super().send(data)


class _SecureConnection(_Connection, http.client.HTTPSConnection):
    """The same over TLS."""


def _close_all(idle: list[tuple[_Connection, float]]) -> None:
    while idle:
        idle.pop()[0].close()


def _closed_by_peer(connection: _Connection) -> bool:
    """Whether the other end has closed an idle connection (a proxy may after each answer,
    without saying so): an idle socket with something to read has reached its end."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)

"""Signing requests in: the bearer token, and throttling failed sign-ins per address.

``Authorization: Bearer mr_...`` on every ``/api`` request; the token is looked up afresh
each time (``Client.authenticate``), so a revoked token is refused on the next request.
Failed sign-ins (a token given but unknown, revoked, expired, or its user disabled) are
counted per client address: after ``limit`` of them within ``window_s`` seconds, that
address gets 429 with ``Retry-After`` until the oldest failure leaves the window, whatever
token it sends. The token never appears in an answer or a log line.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.requests import Request

from modelrail.client import Client
from modelrail.entities import User
from modelrail.errors import AuthenticationError, ThrottledError

FAILURE_LIMIT = 10
FAILURE_WINDOW_S = 60.0
# Addresses remembered at most; the least recently failing are forgotten first.
MAX_ADDRESSES = 10_000


class FailureThrottle:
    """Failed sign-ins per client address in a sliding window. Thread-safe; ``clock``
    (monotonic seconds) is for tests."""

    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window_s: float = FAILURE_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Raise ``ThrottledError`` while ``address`` has used up its failures."""
        with self._lock:
            now = self._clock()
            failures = self._recent(address, now)
            if failures is None or len(failures) < self.limit:
                return
            wait = max(1, math.ceil(failures[0] + self.window_s - now))
        raise ThrottledError(
            f"too many failed sign-ins from this address: try again in {wait} s",
            retry_after=wait,
        )

    def failed(self, address: str) -> None:
        with self._lock:
            now = self._clock()
            failures = self._recent(address, now)
            if failures is None:
                failures = self._failures[address] = deque(maxlen=self.limit)
                while len(self._failures) > self._max_addresses:
                    self._failures.popitem(last=False)
            self._failures.move_to_end(address)
            failures.append(now)

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures


def bearer_token(request: Request) -> str:
    """The token of the ``Authorization: Bearer ...`` header; never echoed back."""
    header = request.headers.get("authorization")
    if not header:
        raise AuthenticationError(
            "this server needs an API token: send 'Authorization: Bearer <token>'",
            reason="missing",
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "the Authorization header must be 'Bearer <token>'", reason="malformed"
        )
    return token.strip()


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def sign_in(client: Client, throttle: FailureThrottle, request: Request) -> User:
    """The user the request's token signs in, counting a failure against its address.

    Blocking (it reads the store): run it in a worker thread."""
    address = client_address(request)
    throttle.check(address)
    try:
        return client.authenticate(bearer_token(request))
    except AuthenticationError as exc:
        if exc.reason != "missing":
            throttle.failed(address)
        raise

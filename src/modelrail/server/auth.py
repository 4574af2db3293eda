"""Signing requests in: the bearer token, a trusted proxy's user header, and throttling
failed sign-ins per address.

``Authorization: Bearer mr_...`` on every ``/api`` request; the token is looked up afresh
each time (``Client.authenticate``), so a revoked token is refused on the next request.
Failed sign-ins (a token given but unknown, revoked, expired, or its user disabled) are
counted per client address: after ``limit`` of them within ``window_s`` seconds, that
address gets 429 with ``Retry-After`` until the oldest failure leaves the window, whatever
token it sends. The token never appears in an answer or a log line.

**Single sign-on behind a reverse proxy** (``TrustedProxy``): when a proxy that has signed
the person in (oauth2-proxy, nginx with ``auth_request``) names them in a header such as
``X-Forwarded-User``, that header signs the request in, but only when the TCP peer is one
of the configured proxy addresses. From any other peer the header is ignored and the
request needs a token as before; without a ``TrustedProxy`` it is never read. The name must
be a user of the store who is not disabled; a header naming anyone else is a failed sign-in.
Behind a trusted proxy, failures count against the address that proxy reports for the
browser (the last ``X-Forwarded-For`` entry not itself a trusted proxy), so one person's
failures do not lock out everyone behind the same proxy. The peer must be the real TCP
peer: run uvicorn with ``proxy_headers=False`` (``modelrail server`` and ``modelrail ui``
do).
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from modelrail.client import Client
from modelrail.entities import User
from modelrail.errors import AuthenticationError, ConfigError, ThrottledError, UserNotFoundError

T = TypeVar("T")
FAILURE_LIMIT = 10
FAILURE_WINDOW_S = 60.0
# Addresses remembered at most; the least recently failing are forgotten first.
MAX_ADDRESSES = 10_000
# An HTTP header name (RFC 9110 token), and headers a proxy must never be told to sign in by.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")
_RESERVED_HEADERS = frozenset({"authorization", "cookie", "host", "x-forwarded-for"})
_SHOWN_NAME = 128  # a header value longer than any user name is cut in messages

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TrustedProxy:
    """Which peers may sign a request in by naming its user in ``header``: ``networks``
    (single addresses are /32 or /128 networks)."""

    header: str
    networks: tuple[Network, ...]

    @classmethod
    def from_options(cls, header: str | None, proxies: Iterable[str]) -> TrustedProxy | None:
        """From ``--proxy-user-header`` and each ``--trusted-proxy`` (an IP address or a CIDR
        network); None when neither is given. ``ConfigError`` (exit code 2) when only one
        is, or either is malformed."""
        given = [item.strip() for item in proxies]
        if header is None and not given:
            return None
        if header is None or not given:
            missing = "--trusted-proxy" if header is not None else "--proxy-user-header"
            raise ConfigError(
                f"single sign-on by a proxy header needs both --proxy-user-header and "
                f"--trusted-proxy: {missing} is missing"
            )
        header = header.strip()
        if not _HEADER_NAME.match(header) or header.lower() in _RESERVED_HEADERS:
            raise ConfigError(
                f"--proxy-user-header {header!r} is not a header a proxy can name the user "
                "in (say X-Forwarded-User)"
            )
        networks = []
        for item in given:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(
                    f"--trusted-proxy {item!r} is not an IP address or a network like "
                    "10.0.0.0/8 or fd00::/8"
                ) from None
        return cls(header, tuple(networks))

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (a peer, possibly an IPv4 address mapped into IPv6) is a
        trusted proxy."""
        found = _ip(address)
        return found is not None and any(found in network for network in self.networks)

    def user_name(self, request: Request) -> str | None:
        """The name the header carries when the TCP peer is a trusted proxy (None when it
        is not, or sent no such header); more than one such header is a failed sign-in."""
        if not self.trusts(peer_address(request)):
            return None
        values = [v.strip() for v in request.headers.getlist(self.header) if v.strip()]
        if len(values) > 1:
            raise AuthenticationError(
                f"the proxy sent {len(values)} {self.header} headers: it must send one user name",
                reason="malformed",
            )
        return values[0] if values else None

    def browser_address(self, request: Request) -> str:
        """The address of the client behind the trusted proxies: the last
        ``X-Forwarded-For`` entry that is not a trusted proxy (the peer when there is none)."""
        peer = peer_address(request)
        if not self.trusts(peer):
            return peer
        hops = [h.strip() for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
        for hop in reversed(hops):
            if _ip(hop) is None:
                break  # junk: trust nothing further left
            if not self.trusts(hop):
                return hop
        return peer


class FailureThrottle:
    """Failed sign-ins per client address in a sliding window. Thread-safe; ``clock``
    (monotonic seconds) is for tests. ``proxy``, when set, is the trusted proxy whose user
    header signs requests in (``sign_in``) and whose reported client address failures
    count against."""

    def __init__(
        self,
        limit: int = FAILURE_LIMIT,
        window_s: float = FAILURE_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
        proxy: TrustedProxy | None = None,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.proxy = proxy
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def address(self, request: Request) -> str:
        """The address this request's failures count against."""
        if self.proxy is None:
            return peer_address(request)
        return self.proxy.browser_address(request)

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

    def counted(self, address: str, sign_in: Callable[[], T]) -> T:
        """``sign_in()`` unless ``address`` is throttled, counting its failure (a token or
        name given but refused; not a missing one) against ``address``."""
        self.check(address)
        try:
            return sign_in()
        except AuthenticationError as exc:
            if exc.reason != "missing":
                self.failed(address)
            raise

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
        raise _no_token()
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "the Authorization header must be 'Bearer <token>'", reason="malformed"
        )
    return token.strip()


def peer_address(request: Request) -> str:
    """The TCP peer's address (an IPv4 address mapped into IPv6 as IPv4)."""
    if request.client is None:
        return "unknown"
    found = _ip(request.client.host)
    return str(found) if found is not None else request.client.host


def sign_in(client: Client, throttle: FailureThrottle, request: Request) -> User:
    """The user the request's trusted proxy header or token signs in, counting a failure
    against its address. Blocking (it reads the store): run it in a worker thread."""
    user = sign_in_if_offered(client, throttle, request)
    if user is None:
        raise _no_token()
    return user


def sign_in_if_offered(
    client: Client, throttle: FailureThrottle, request: Request, *, tokens: bool = True
) -> User | None:
    """As ``sign_in``, but None when the request offers neither a trusted proxy's user
    header nor (with ``tokens``) an ``Authorization`` header. The proxy's header wins over
    a token (a proxy may pass a bearer token of its own on)."""
    proxy = throttle.proxy
    named = proxy.user_name(request) if proxy is not None else None
    if proxy is not None and named is not None:
        header = proxy.header
        return throttle.counted(
            throttle.address(request), lambda: proxied_user(client, header, named)
        )
    if not tokens or "authorization" not in request.headers:
        return None
    return throttle.counted(
        throttle.address(request), lambda: client.authenticate(bearer_token(request))
    )


def proxied_user(client: Client, header: str, name: str) -> User:
    """The user a trusted proxy names; ``AuthenticationError`` when the store has no such
    user, or they are disabled."""
    shown = name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "..."
    try:
        user = client.get_user(name)
    except UserNotFoundError:
        raise AuthenticationError(
            f"the proxy signed in {shown!r} ({header}), but no user of this store has that "
            f"name: an admin adds it with 'modelrail users add {shown} --role ROLE'",
            reason="unknown",
        ) from None
    if user.disabled:
        raise AuthenticationError(
            f"the proxy signed in {user.name} ({header}), who is disabled", reason="disabled"
        )
    return user


def _no_token() -> AuthenticationError:
    return AuthenticationError(
        "this server needs an API token: send 'Authorization: Bearer <token>'", reason="missing"
    )


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        found = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(found, "ipv4_mapped", None)
    return mapped or found

"""Which requests the dashboard answers: the ``Host`` it is reached by, and where a form
was sent from.

**Host.** Every request must name, in its ``Host`` header, an address the dashboard is
reached at: the address the connection arrived on (when that is a loopback address, also
``localhost``, ``127.0.0.1`` and ``::1``), at the port it arrived on; or one of the public
names it is configured with (``--public-name``, ``MODELRAIL_UI_PUBLIC_NAME``, ``[ui]
public_name``). Anything else is refused with 400 before any page runs: that is what a
page of another site sends after pointing its own name at this machine (DNS rebinding),
and it must be able neither to read the pages nor to send their forms. A dashboard bound to
``0.0.0.0`` thus answers at each of the machine's addresses, and by a name only when told.

**Origin.** The Host, with the scheme the request arrived by, is the origin the dashboard is
reached at. A POST whose ``Origin`` is not exactly that scheme, host and port, whose
``Referer`` (when it has no ``Origin``) is of another origin, or whose ``Sec-Fetch-Site``
is not ``same-origin`` is refused with 403. A POST with neither header (no browser sends
one so) is left to the form's CSRF token (see ``auth``).

A public name is ``NAME`` (reached at the dashboard's own port), ``NAME:PORT``, or
``SCHEME://NAME[:PORT]`` when a proxy in front serves it (say ``https://ml.example.org``,
which is port 443 and the only origin its forms may come from).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelrail.errors import ConfigError, ForbiddenError, InvalidInputError
from modelrail.ui.auth import SESSION_COOKIE, Sessions

DEFAULT_PORTS = {"http": 80, "https": 443}
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_HOST = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::(?P<port>\d{1,5}))?"
)
_NO_SESSION_PATHS = ("/static/", "/health")


@dataclass(frozen=True)
class Origin:
    """scheme://host:port, the host in lower case (an IPv6 address without brackets)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Origin | None:
        """The origin of an ``Origin`` or ``Referer`` value; None for ``null`` or junk."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:
            return None
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            return None
        return cls(scheme, parts.hostname, port or DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


@dataclass(frozen=True)
class PublicName:
    """A name the dashboard is reached by; ``port`` None is its own port, ``scheme`` None
    the scheme requests arrive by."""

    host: str
    port: int | None = None
    scheme: str | None = None


def parse_public_names(text: str | None) -> tuple[PublicName, ...]:
    """``NAME``, ``NAME:PORT`` or ``SCHEME://NAME[:PORT]``, separated by commas or spaces."""
    names = []
    for item in (text or "").replace(",", " ").split():
        parts = urlsplit(item if "://" in item else f"//{item}")
        scheme = parts.scheme.lower() or None
        try:
            port = parts.port
        except ValueError:
            port = 0
        if (
            not parts.hostname
            or port == 0
            or (scheme is not None and scheme not in DEFAULT_PORTS)
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise ConfigError(
                f"the dashboard's public name {item!r} is not NAME, NAME:PORT or "
                "http(s)://NAME[:PORT]"
            )
        if scheme is not None and port is None:
            port = DEFAULT_PORTS[scheme]
        names.append(PublicName(parts.hostname, port, scheme))
    return tuple(names)


def reached_origin(scope: Scope, public: Sequence[PublicName]) -> Origin:
    """The origin this request reached the dashboard at, from its ``Host``; raises
    ``InvalidInputError`` (400) when that is not an address or name of the dashboard."""
    values = Headers(scope=scope).getlist("host")
    shown = values[0] if len(values) == 1 else ", ".join(values) or "(none)"
    found = _HOST.fullmatch(values[0]) if len(values) == 1 else None
    if found is None:
        raise InvalidInputError(f"the Host header {shown!r} is not one host name")
    host = (found["v6"] or found["name"]).lower()
    given_port = int(found["port"]) if found["port"] else None
    arrived_by = str(scope.get("scheme", "http"))
    local_host, local_port = _local_address(scope)
    for name in public:
        if name.host != host:
            continue
        scheme = name.scheme or arrived_by
        wanted = name.port or local_port or DEFAULT_PORTS[scheme]
        if (given_port or DEFAULT_PORTS[scheme]) == wanted:
            return Origin(scheme, host, wanted)
    if local_port is not None:
        local_names = {local_host} | (LOOPBACK_NAMES if _is_loopback(local_host) else set())
        if host in local_names and (given_port or DEFAULT_PORTS[arrived_by]) == local_port:
            return Origin(arrived_by, host, local_port)
    named = f"[{host}]" if found["v6"] else host
    raise InvalidInputError(
        f"this dashboard is not reached as {shown!r}, so the request was refused (a page of "
        "another site may have pointed its name at this machine); use the dashboard's own "
        f"address, or, if people reach it by this name, start it with --public-name {named}"
    )


def check_origin(request: Request, expected: Origin) -> None:
    """Refuse a POST that a page of another origin made the browser send."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise ForbiddenError(
            f"this form was sent from another site (Sec-Fetch-Site: {site}); "
            "use the dashboard's own pages"
        )
    origin = request.headers.get("origin")
    if origin is not None:
        if Origin.parse(origin) != expected:
            raise ForbiddenError(
                f"this form was sent from {origin[:200]}, not from this dashboard ({expected})"
            )
        return
    referer = request.headers.get("referer")
    if referer is not None and (sent_from := Origin.parse(referer)) != expected:
        raise ForbiddenError(
            f"this form was sent from a page of {sent_from or 'an unknown origin'}, "
            f"not from this dashboard ({expected})"
        )


class RequestGuard:
    """ASGI middleware: refuses a foreign ``Host`` (400, plain text, so such a page learns
    nothing), then gives the request its origin (``request.state.origin``), its session
    (``request.state.session``, a new one set as a cookie when it came without a valid one)
    and that session's CSRF token (``request.state.csrf_token``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: Sessions,
        public_names: Sequence[PublicName],
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.public_names = public_names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            origin = reached_origin(scope, self.public_names)
        except InvalidInputError as exc:
            refusal = PlainTextResponse(f"{exc.message}\n", status_code=exc.http_status)
            await refusal(scope, receive, send)
            return
        request = Request(scope)
        session = self.sessions.read(request) or self.sessions.start()
        request.state.origin = origin
        request.state.session = session
        request.state.csrf_token = self.sessions.csrf_token(session)
        if not session.new or str(scope["path"]).startswith(_NO_SESSION_PATHS):
            await self.app(scope, receive, send)
            return
        cookie = self.sessions.cookie(session, secure=origin.scheme == "https")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                prefix = f"{SESSION_COOKIE}=".encode()
                if not any(n.lower() == b"set-cookie" and v.startswith(prefix) for n, v in headers):
                    headers.append(cookie)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _local_address(scope: Scope) -> tuple[str, int | None]:
    """The address and port the connection arrived on (an IPv4 address mapped into IPv6
    as IPv4), or ('', None) when the server does not say (a Unix socket)."""
    server = scope.get("server")
    if not server or server[1] is None:
        return "", None
    host = str(server[0]).split("%", 1)[0].lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host, int(server[1])
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address), int(server[1])


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

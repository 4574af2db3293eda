"""Serving the dashboard: bind the port first (so a port in use is a clear error, as for
``modelrail serve``), then run uvicorn on it until interrupted."""

from __future__ import annotations

from starlette.applications import Starlette

from modelrail.config import Settings
from modelrail.server.auth import FailureThrottle, TrustedProxy
from modelrail.serving.server import bind
from modelrail.store.db import parse_store_url
from modelrail.ui.app import create_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def build_ui(
    settings: Settings,
    token: str | None,
    public_names: str | None = None,
    proxy: TrustedProxy | None = None,
) -> Starlette:
    """The app for ``settings``; a malformed store URL or public name is reported now,
    while an unreachable store gives 503 pages until it can be reached. ``proxy`` is the
    trusted single sign-on proxy, if any."""
    parse_store_url(settings.store_url)
    return create_app(
        settings, token=token, public_names=public_names, throttle=FailureThrottle(proxy=proxy)
    )


def run_ui(app: Starlette, host: str, port: int) -> None:
    import uvicorn

    sock = bind(host, port)  # ServerStartError (exit code 8) when the port is taken
    config = uvicorn.Config(
        app,
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        # The peer stays the TCP peer: it decides whether a proxy's user header is trusted.
        proxy_headers=False,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()

"""Serving the dashboard: bind the port first (so a port in use is a clear error, as for
``modelrail serve``), then run uvicorn on it until interrupted."""

from __future__ import annotations

from typing import cast

from starlette.applications import Starlette

from modelrail.client import Client
from modelrail.config import Settings
from modelrail.server.auth import FailureThrottle, TrustedProxy
from modelrail.serving.server import bind
from modelrail.store.db import parse_store_url
from modelrail.ui.app import create_app
from modelrail.ui.state import PeopleClients

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


def build_ui_through_server(
    settings: Settings, server: str, public_names: str | None = None
) -> Starlette:
    """The dashboard through the team server at ``server``: it reads with this machine's
    token (``modelrail login``) and acts for each person with their own, so the server
    checks every change against their roles and records it as theirs."""
    from modelrail.remote import credentials
    from modelrail.remote.client import RemoteClient

    launcher = credentials.token_for(server)

    def open_as(token: str) -> Client:
        return cast(Client, RemoteClient(server, token, settings=settings))

    return create_app(
        lambda: open_as(launcher),
        public_names=public_names or settings.ui_public_name,
        people=PeopleClients(open_as),
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

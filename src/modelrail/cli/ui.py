"""``modelrail ui``: the web dashboard."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from modelrail.cli.context import server_in_effect
from modelrail.cli.render import console, error_console
from modelrail.cli.server import (
    ProxyUserHeader,
    TrustedProxies,
    signing_in_by_proxy,
    trusted_proxy_of,
)

if TYPE_CHECKING:
    from modelrail.config import Settings


def ui(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MODELRAIL_UI_TOKEN",
            show_envvar=True,
            help="On a store without users, changes (promote, approve, reject, roll back) "
            "need this token. A store with users does not use it: each person signs in "
            "with a personal API token.",
        ),
    ] = None,
    public_name: Annotated[
        str | None,
        typer.Option(
            envvar="MODELRAIL_UI_PUBLIC_NAME",
            show_envvar=True,
            help=(
                "Names the dashboard is reached by besides its own addresses, comma-separated: "
                "NAME, NAME:PORT or https://NAME behind a proxy. Other Host headers get 400. "
                "Default: [ui] public_name."
            ),
        ),
    ] = None,
    proxy_user_header: ProxyUserHeader = None,
    trusted_proxy: TrustedProxies = None,
) -> None:
    """Serve the web dashboard: tracker, runs, comparisons, environments and batch runs.

    On a store with users, each person signs in (a personal API token, or a trusted single
    sign-on proxy's header) and is offered what their roles allow. On a store without
    users, reading is open and changes are recorded as MODELRAIL_USER."""
    from modelrail.config import load_settings
    from modelrail.errors import ConfigError, ProjectNotFoundError
    from modelrail.store.db import parse_store_url
    from modelrail.ui.server import LOOPBACK, build_ui, build_ui_through_server, run_ui

    proxy = trusted_proxy_of(proxy_user_header, trusted_proxy)
    settings = load_settings(create=False)
    server = server_in_effect(settings)
    if server:
        if proxy is not None:
            raise ConfigError(
                "--proxy-user-header works only where the dashboard reaches the store: through "
                "a team server, each person signs in with their own token"
            )
        app = build_ui_through_server(settings, server, public_name)
        console().print(
            f"modelrail dashboard on http://{host}:{port} through the team server {server}; "
            "each person signs in with their own token",
            markup=False,
        )
        run_ui(app, host, port)
        return
    if not settings.project_dir.is_dir() and "MODELRAIL_STORE" not in os.environ:
        raise ProjectNotFoundError(
            f"no modelrail project in {settings.project_root} or any folder above it "
            "(looked for a .modelrail/ folder): run 'modelrail init' first, or set MODELRAIL_STORE"
        )
    app = build_ui(settings, token, public_name, proxy)
    team = _has_users(settings)
    if team and token is not None:
        error_console().print(
            "warning: this store has users, so --token / MODELRAIL_UI_TOKEN is not used: "
            "each person signs in with a personal API token ('modelrail tokens create')"
        )
    elif team is False and token is None and host not in LOOPBACK:
        error_console().print(
            f"warning: anyone who can reach {host}:{port} can promote and roll back models; "
            "add users ('modelrail users add') or set --token or MODELRAIL_UI_TOKEN"
        )
    if team:
        who = "each person signs in"
    elif token:
        who = "changes need the token"
    else:
        who = f"changes are recorded as {settings.user}"
    if proxy is not None:
        who += f"; single sign-on by {signing_in_by_proxy(proxy)}"
    shown_host = f"[{host}]" if ":" in host else host
    store = parse_store_url(settings.store_url).render_as_string(hide_password=True)
    console().print(
        f"modelrail dashboard on http://{shown_host}:{port} (store {store}; {who})",
        markup=False,
    )
    run_ui(app, host, port)


def _has_users(settings: Settings) -> bool | None:
    """Whether the store has users (None: it cannot be reached now; the pages then say so)."""
    from modelrail.client import Client
    from modelrail.errors import ModelrailError

    try:
        with Client(settings=settings) as client:
            return bool(client.users())
    except ModelrailError:
        return None


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)

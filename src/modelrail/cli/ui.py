"""``modelrail ui``: the web dashboard."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from modelrail.cli.render import console, error_console


def ui(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MODELRAIL_UI_TOKEN",
            show_envvar=True,
            help="Changes (promote, approve, reject, roll back) need this token.",
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
) -> None:
    """Serve the web dashboard: tracker, runs, comparisons, environments and batch runs."""
    from modelrail.config import load_settings
    from modelrail.errors import ProjectNotFoundError
    from modelrail.store.db import parse_store_url
    from modelrail.ui.server import LOOPBACK, build_ui, run_ui

    settings = load_settings(create=False)
    if not settings.project_dir.is_dir() and "MODELRAIL_STORE" not in os.environ:
        raise ProjectNotFoundError(
            f"no modelrail project in {settings.project_root} or any folder above it "
            "(looked for a .modelrail/ folder): run 'modelrail init' first, or set MODELRAIL_STORE"
        )
    app = build_ui(settings, token, public_name)
    if token is None and host not in LOOPBACK:
        error_console().print(
            f"warning: anyone who can reach {host}:{port} can promote and roll back models; "
            "set --token or MODELRAIL_UI_TOKEN"
        )
    shown_host = f"[{host}]" if ":" in host else host
    store = parse_store_url(settings.store_url).render_as_string(hide_password=True)
    console().print(
        f"modelrail dashboard on http://{shown_host}:{port} (store {store}"
        + (", changes need the token)" if token else ")"),
        markup=False,
    )
    run_ui(app, host, port)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)

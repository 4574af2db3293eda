"""``modelrail server``: the team server, the library over HTTP in front of one store."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from modelrail.cli.render import console

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from modelrail.server.auth import TrustedProxy

# Single sign-on behind a reverse proxy, the same for ``modelrail server`` and ``modelrail ui``.
ProxyUserHeader = Annotated[
    str | None,
    typer.Option(
        "--proxy-user-header",
        help="Single sign-on: the header in which a reverse proxy names the signed-in user "
        "(e.g. X-Forwarded-User). Read only from a --trusted-proxy address.",
    ),
]
TrustedProxies = Annotated[
    list[str] | None,
    typer.Option(
        "--trusted-proxy",
        help="An address or network (10.0.0.5, 10.0.0.0/24) of the proxy whose "
        "--proxy-user-header is trusted; repeat for more. Other peers need a token.",
    ),
]


def trusted_proxy_of(header: str | None, proxies: list[str] | None) -> TrustedProxy | None:
    """The options' proxy (``ConfigError``, exit code 2, when only one is given)."""
    from modelrail.server.auth import TrustedProxy

    return TrustedProxy.from_options(header, proxies or ())


def signing_in_by_proxy(proxy: TrustedProxy) -> str:
    """How the start-up line says who the proxy may sign in."""
    return f"{proxy.header} from {', '.join(map(str, proxy.networks))}"


def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 5050,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="The store's URL (e.g. postgresql+psycopg://...). Default: MODELRAIL_STORE "
            "or the project's own store.",
        ),
    ] = None,
    artifacts: Annotated[
        str | None,
        typer.Option(
            "--artifacts",
            help="The artifact root (a folder or s3://, gs://...). Default: MODELRAIL_ARTIFACTS "
            "or the project's own folder.",
        ),
    ] = None,
    max_upload_mb: Annotated[
        int,
        typer.Option(
            "--max-upload-mb",
            help="The largest artifact an upload may be, in MiB; a larger one is refused (413).",
            min=1,
        ),
    ] = 4096,
    proxy_user_header: ProxyUserHeader = None,
    trusted_proxy: TrustedProxies = None,
) -> None:
    """Run the team server: every request signs in with a personal API token, or behind a
    trusted single sign-on proxy, by the user the proxy names."""
    from modelrail.client import Client
    from modelrail.config import load_settings
    from modelrail.errors import ProjectNotFoundError
    from modelrail.server import FailureThrottle, build_app
    from modelrail.store.db import parse_store_url

    proxy = trusted_proxy_of(proxy_user_header, trusted_proxy)

    settings = load_settings(create=False)
    if store is None and not settings.project_dir.is_dir() and "MODELRAIL_STORE" not in os.environ:
        raise ProjectNotFoundError(
            f"no modelrail project in {settings.project_root} or any folder above it "
            "(looked for a .modelrail/ folder): give --store, set MODELRAIL_STORE, "
            "or run 'modelrail init' first"
        )
    with Client(
        store_url=store, artifact_root=artifacts, settings=settings, user="server"
    ) as client:
        shown_host = f"[{host}]" if ":" in host else host
        address = parse_store_url(store or settings.store_url).render_as_string(hide_password=True)
        signing_in = "every request needs 'Authorization: Bearer <token>'"
        if proxy is not None:
            signing_in += f", or {signing_in_by_proxy(proxy)}"
        console().print(
            f"modelrail team server on http://{shown_host}:{port} (store {address}); " + signing_in,
            markup=False,
        )
        app = build_app(
            client,
            throttle=FailureThrottle(proxy=proxy),
            # The library speaks bytes; MiB are the unit an operator thinks in.
            max_upload_bytes=max_upload_mb << 20,
        )
        _run(app, host, port)


def _run(app: Starlette, host: str, port: int) -> None:
    import uvicorn

    from modelrail.serving.server import bind

    sock = bind(host, port)  # ServerStartError (exit code 8) when the port is taken
    # No access log: a token sent where it does not belong (a query string) is never written.
    # No proxy headers: the peer must stay the TCP peer, which decides whether a proxy's
    # user header is trusted (server.auth.TrustedProxy reads X-Forwarded-For itself).
    config = uvicorn.Config(
        app,
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        proxy_headers=False,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    app.command("server")(server)

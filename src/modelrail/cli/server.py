"""``modelrail server``: the team server, the library over HTTP in front of one store.

With ``--workers N`` (N > 1) this process checks the store, binds the port and starts N worker
processes (``python -m modelrail.cli.server``) that serve on the same socket, each with its own
connections to the store; it restarts a worker that dies and stops them all on SIGTERM or
Ctrl-C. Each worker counts failed sign-ins and answers long polls on its own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelrail.cli.render import console

if TYPE_CHECKING:
    import socket

    from starlette.applications import Starlette

    from modelrail.client import Client
    from modelrail.server.auth import TrustedProxy

log = logging.getLogger(__name__)
# A worker that exits sooner than this after its start would fail again: stop instead.
_WORKER_SETTLE_S = 5.0

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
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Worker processes serving on the one port, each with its own connections to "
            "the store (and its own count of failed sign-ins).",
            min=1,
        ),
    ] = 1,
) -> None:
    """Run the team server: every request signs in with a personal API token, or behind a
    trusted single sign-on proxy, by the user the proxy names."""
    from modelrail.client import Client
    from modelrail.config import load_settings
    from modelrail.errors import ProjectNotFoundError
    from modelrail.store.db import parse_store_url

    proxy = trusted_proxy_of(proxy_user_header, trusted_proxy)
    # The library speaks bytes; MiB are the unit an operator thinks in.
    options = _WorkerOptions(max_upload_mb << 20, proxy_user_header, tuple(trusted_proxy or ()))

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
        if workers > 1:
            signing_in += f"; {workers} worker processes"
        console().print(
            f"modelrail team server on http://{shown_host}:{port} (store {address}); " + signing_in,
            markup=False,
        )
        if workers == 1:
            _run(_app(client, options, proxy), _bound(host, port))
            return
    # This process has closed its connections: only the workers use the store from here on,
    # the same store and artifacts (as the client above chose them).
    where = {
        "MODELRAIL_STORE": store or settings.store_url,
        "MODELRAIL_ARTIFACTS": artifacts or settings.artifact_root,
    }
    _run_workers(_bound(host, port), workers, options, where)


@dataclass(frozen=True)
class _WorkerOptions:
    """What each worker process builds its app with (the store's URL, which may hold a
    password, goes in its environment, not on its command line)."""

    max_upload_bytes: int
    proxy_user_header: str | None
    trusted_proxies: tuple[str, ...]


def _bound(host: str, port: int) -> socket.socket:
    from modelrail.serving.server import bind

    return bind(host, port)  # ServerStartError (exit code 8) when the port is taken


def _run(app: Starlette, sock: socket.socket) -> None:
    import uvicorn

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


def _run_workers(
    sock: socket.socket, workers: int, options: _WorkerOptions, where: dict[str, str]
) -> None:
    """Serve on ``sock`` from ``workers`` processes until SIGTERM or Ctrl-C; a worker that dies
    is started again, unless it died right after its start (it would again: then all stop,
    and this raises ``ServerStartError``)."""
    from modelrail.errors import ServerStartError

    env = {**os.environ, **where}
    command = [sys.executable, "-m", "modelrail.cli.server", str(sock.fileno())]
    command.append(json.dumps(asdict(options)))

    def start() -> tuple[subprocess.Popen[bytes], float]:
        return subprocess.Popen(command, pass_fds=(sock.fileno(),), env=env), time.monotonic()

    children = [start() for _ in range(workers)]
    stopping = False
    failed: str | None = None

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child, _ in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for index, (child, started) in enumerate(children):
                if child.poll() is None or stopping:
                    continue
                if time.monotonic() - started < _WORKER_SETTLE_S:
                    failed = f"a worker process exited ({child.returncode}) as it started"
                    stop(signal.SIGTERM, None)
                    break
                log.warning(
                    "modelrail server: worker %s exited (%s); restarting",
                    child.pid,
                    child.returncode,
                )
                children[index] = start()
            time.sleep(0.2)
    finally:
        for child, _ in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        sock.close()
    if failed is not None:
        raise ServerStartError(failed + ": its error is above")


def _worker_main(argv: list[str]) -> None:
    """One worker of ``modelrail server --workers N``: serve on the inherited socket."""
    import socket

    from modelrail.client import Client
    from modelrail.config import load_settings

    fd, spec = int(argv[0]), json.loads(argv[1])
    options = _WorkerOptions(**{**spec, "trusted_proxies": tuple(spec["trusted_proxies"])})
    proxy = trusted_proxy_of(options.proxy_user_header, list(options.trusted_proxies))
    with Client(
        store_url=os.environ["MODELRAIL_STORE"],
        artifact_root=os.environ["MODELRAIL_ARTIFACTS"],
        settings=load_settings(create=False),
        user="server",
    ) as client:
        _run(_app(client, options, proxy), socket.socket(fileno=fd))


def _app(client: Client, options: _WorkerOptions, proxy: TrustedProxy | None) -> Starlette:
    from modelrail.server import FailureThrottle, build_app

    throttle = FailureThrottle(proxy=proxy)
    return build_app(client, throttle=throttle, max_upload_bytes=options.max_upload_bytes)


def register(app: typer.Typer) -> None:
    app.command("server")(server)


if __name__ == "__main__":  # a worker process of ``modelrail server --workers N``
    from modelrail.errors import ModelrailError

    try:
        _worker_main(sys.argv[1:])
    except ModelrailError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)

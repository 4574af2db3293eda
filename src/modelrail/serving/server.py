"""Starting the prediction server: resolve what to serve, check it loads, bind the
port, and run one or several uvicorn worker processes on it.

Several workers share one listening socket that the parent binds and hands down
(each child accepts on it), so a port in use is reported once, before anything
starts, and every worker keeps TCP_NODELAY as a single-process server does.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

from modelrail.client import Client, default_client
from modelrail.entities import ModelVersion
from modelrail.errors import ModelrailError, NotFoundError, ServerStartError
from modelrail.monitoring.feedback_api import FeedbackWriter
from modelrail.monitoring.gauges import LatestChecks
from modelrail.policy import EnvironmentPolicy
from modelrail.refs import Ref
from modelrail.scoring.forms.record import ONE_ROW
from modelrail.scoring.predictor import ScoringModel, scoring_model_for
from modelrail.serving.app import PredictionApp
from modelrail.serving.auth import TokenGuard
from modelrail.serving.inputs import Limits
from modelrail.serving.metrics import ServerMetrics
from modelrail.serving.models import ModelSet, ServedModel, Watcher
from modelrail.serving.options import ServeOptions as ServeOptions  # its home until now
from modelrail.serving.prediction_logging import plan_logging

if TYPE_CHECKING:
    from modelrail.remote.client import RemoteClient

log = logging.getLogger("modelrail.serving")


@dataclass
class BuiltServer:
    app: PredictionApp
    watchers: list[Watcher]
    client: Client
    stoppers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        for stop in self.stoppers:
            stop()
        self.client.close()


def build_server(client: Client, options: ServeOptions) -> BuiltServer:
    """The ASGI app with its models loaded and verified (or waiting, with ``wait``)."""
    if options.environment is None and not options.references:
        raise ServerStartError(
            "nothing to serve: give an {environment} or a model reference",
            params=("environment",),
        )

    def load(name: str, version: int) -> ScoringModel:
        # The form chosen for one row at registration (sha256-checked) serves without the
        # model's training library in the worker; a version without forms, through it.
        version_ = client.get_model_version(f"{name}:{version}")
        scoring = scoring_model_for(client.artifacts, version_, ONE_ROW)
        scoring.prefetch_library()
        return scoring

    models = ModelSet()
    watchers: list[Watcher] = []
    stoppers: list[Any] = []
    for text in options.references:
        ref = Ref.parse(text)
        version = _version_to_serve(client, ref)
        try:
            scoring = load(ref.name, version.version)
        except ModelrailError as exc:
            raise ServerStartError(f"cannot serve {version.reference}: {exc.message}") from exc
        models.swap(ServedModel(ref.name, ref.environment, scoring, time.time()))
    models.expected = frozenset(models.current)
    metrics = ServerMetrics()

    def loaded(served: ServedModel) -> None:
        metrics.loaded.labels(served.name, served.environment or "").set(served.version)

    if options.environment is not None:
        watchers.append(_environment_watcher(client, options, models, load, loaded))
    environments = {options.environment, *(m.environment for m in models.current.values())}
    log_plan = plan_logging(client, options, metrics, environments)
    starters: list[Any] = []
    if log_plan is not None:
        starters.append(log_plan.log.start)
        stoppers.append(log_plan.log.stop)
    shadow_hook = None
    if options.shadow is not None:
        from modelrail.serving.shadow import ShadowScorer

        shadow = ShadowScorer(client, options.shadow, metrics, load, options, log_plan)
        watchers.append(shadow.watcher)
        shadow_hook = shadow.submit
        stoppers.insert(0, shadow.stop)  # its last answers go to the log before it stops
    feedback = FeedbackWriter(client.settings.monitoring_folder)
    stoppers.append(feedback.stop)
    for name, served in models.current.items():
        metrics.loaded.labels(name, served.environment or "").set(served.version)
    app = PredictionApp(
        models,
        environment=options.environment,
        metrics=metrics,
        limits=Limits(max_rows=options.max_rows, max_body_bytes=options.max_body_bytes),
        shadow=shadow_hook,
        on_startup=lambda: each([*watchers, *starters], start_item),
        on_shutdown=lambda: each([*watchers, *stoppers], stop_item),
        guard=TokenGuard(client.authenticate, options.environment) if options.auth else None,
        guard_metrics=options.auth and options.metrics_auth,
        log_plan=log_plan,
        feedback=feedback,
        # The latest monitoring checks of what this server answers, as gauges.
        more_metrics=LatestChecks(client.settings.monitoring_folder, lambda: models.current),
    )
    return BuiltServer(app=app, watchers=watchers, client=client, stoppers=stoppers)


def each(items: list[Any], action: Any) -> None:
    for item in items:
        action(item)


def stop_item(item: Any) -> None:
    item.stop() if isinstance(item, Watcher) else item()


def start_item(item: Any) -> None:
    item.start() if isinstance(item, Watcher) else item()


def _environment_watcher(
    client: Client, options: ServeOptions, models: ModelSet, load: Any, on_swap: Any
) -> Watcher:
    environment = options.environment
    assert environment is not None
    environment_policy(client, environment)  # an unknown environment: refused by name

    def holdings() -> dict[str, int]:
        return {h.model: h.version for h in client.board() if h.environment == environment}

    watcher = Watcher(
        models,
        environment,
        holdings,
        load,
        interval_s=options.poll_interval_s,
        only=frozenset(options.only) if options.only else None,
        on_swap=on_swap,
        # A team server's client long-polls for changes; a store is read every interval.
        wait_for_change=None if isinstance(client, Client) else client.wait_for_change,
    )
    watcher.refresh()
    if not options.wait:
        if models.failures:
            name, problem = next(iter(models.failures.items()))
            raise ServerStartError(f"cannot serve {name}@{environment}: {problem}")
        missing = sorted(models.expected - set(models.current))
        if not models.current or missing:
            what = ", ".join(missing) if missing else "no model"
            raise ServerStartError(
                f"{environment} holds {what}: promote a version there first, "
                "or start with {wait} to pick it up when one is promoted",
                params=("wait",),
            )
    return watcher


def environment_policy(client: Client, environment: str) -> EnvironmentPolicy:
    """The environment to serve; one not in the chain means the server cannot start."""
    try:
        return client.policy.environment(environment)
    except NotFoundError as exc:
        raise ServerStartError(f"cannot serve {environment}: {exc.message}") from exc


def listen_address(
    client: Client, environment: str | None, host: str | None, port: int | None
) -> tuple[str, int]:
    """Where to listen: as given, else the environment's ``serving_host`` / ``serving_port``
    settings, else 127.0.0.1:8080."""
    settings = environment_policy(client, environment).settings if environment else {}
    return (
        host or str(settings.get("serving_host", "127.0.0.1")),
        port or int(settings.get("serving_port", 8080)),
    )


def _version_to_serve(client: Client, ref: Ref) -> ModelVersion:
    try:
        return client.get_model_version(ref)
    except NotFoundError as exc:
        raise ServerStartError(f"cannot serve {ref}: {exc.message}") from exc


# Told the address once the server listens with its models loaded (the CLI prints it).
Announce = Callable[[str], None]


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServerStartError(f"port {port} on {host} is already in use") from exc
        raise ServerStartError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(client: Client, options: ServeOptions, announce: Announce | None = None) -> None:
    """Serve until interrupted. Raises ServerStartError before binding if anything is wrong."""
    built = build_server(client, options)  # checks every model loads before the port opens
    sock = bind(options.host, options.port)
    announce_address(announce, sock)
    if options.workers <= 1:
        try:
            run_uvicorn(built.app, sock)
        finally:
            built.close()
        return
    built.close()
    _run_workers(sock, client, options)


def announce_address(announce: Announce | None, sock: socket.socket) -> None:
    if announce is None:
        return
    host, port = sock.getsockname()[:2]
    announce(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")


def run_uvicorn(app: PredictionApp, sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run(sockets=[sock])


def _run_workers(sock: socket.socket, client: Client, options: ServeOptions) -> None:
    metrics_dir = tempfile.mkdtemp(prefix="modelrail-metrics-")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "MODELRAIL_HOME": str(client.settings.project_root),
        **_where_workers_read(client),
    }
    spec = json.dumps(asdict(options))
    command = [sys.executable, "-m", "modelrail.serving.worker", str(sock.fileno()), spec]
    children = [
        subprocess.Popen(command, pass_fds=(sock.fileno(),), env=env)
        for _ in range(options.workers)
    ]
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for index, child in enumerate(children):
                if child.poll() is not None and not stopping:
                    log.warning(
                        "modelrail serve: worker %s exited (%s); restarting",
                        child.pid,
                        child.returncode,
                    )
                    children[index] = subprocess.Popen(command, pass_fds=(sock.fileno(),), env=env)
            time.sleep(0.2)
    finally:
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        sock.close()


def _where_workers_read(client: Client) -> dict[str, str]:
    """The variables that give each worker process the client this process has."""
    if isinstance(client, Client):
        return {
            "MODELRAIL_STORE": client.db.url.render_as_string(hide_password=False),
            "MODELRAIL_ARTIFACTS": client.artifacts.location,
        }
    connection = cast("RemoteClient", client).connection
    return {"MODELRAIL_SERVER": connection.url, "MODELRAIL_TOKEN": connection.token}


def worker_main(argv: list[str]) -> None:
    """Entry point of one worker process (``python -m modelrail.serving.worker``)."""
    fd, spec = int(argv[0]), json.loads(argv[1])
    options = ServeOptions(
        **{**spec, "references": tuple(spec["references"]), "only": tuple(spec["only"])}
    )
    sock = socket.socket(fileno=fd)
    try:
        built = build_server(default_client(), options)
    except ModelrailError as exc:
        print(f"modelrail serve worker: {exc.message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    try:
        run_uvicorn(built.app, sock)
    finally:
        built.close()

"""``modelrail serve`` and ``modelrail shadow report``."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, format_time, print_json

shadow_app = typer.Typer(help="Shadow traffic: how a candidate answers live requests.")


def _rate(value: float | None) -> float | None:
    if value is not None and not 0 <= value <= 1:  # (NaN too)
        raise typer.BadParameter(f"{value} is not a share of requests between 0 and 1")
    return value


def serve(
    references: Annotated[
        list[str] | None,
        typer.Argument(help="Fixed versions to serve (NAME:VERSION), instead of or besides --env."),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", help="Serve what this environment holds; follows promotions."),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="With --env: only this model (repeatable).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            help="Port (default: the environment's serving_port, else 8080).", min=1, max=65535
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the port.", min=1)] = 1,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Start even if nothing is held yet; pick it up when promoted."),
    ] = False,
    shadow: Annotated[
        str | None,
        typer.Option(
            help="Also score each request with what this environment holds (off the request path)."
        ),
    ] = None,
    bundle: Annotated[
        str | None,
        typer.Option(help="Serve a bundle folder (as in images from 'modelrail docker build')."),
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Most rows in one request.", min=1)] = 10_000,
    poll_interval: Annotated[
        float, typer.Option(help="Seconds between checks for promotions.", min=0.05)
    ] = 0.5,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth",
            help="Predictions need 'Authorization: Bearer <token>' of a user with a role in "
            "the environment (see 'modelrail tokens').",
        ),
    ] = False,
    metrics_auth: Annotated[
        bool, typer.Option("--metrics-auth", help="/metrics needs a token too (implies --auth).")
    ] = False,
    log_predictions: Annotated[
        float | None,
        typer.Option(
            "--log-predictions",
            metavar="RATE",
            help="Share of requests (0 to 1) whose inputs and answers are logged for "
            "'modelrail monitor' (default: the environment's [environments.NAME.monitoring] "
            "log_predictions, else 0).",
            callback=_rate,
        ),
    ] = None,
) -> None:
    """Serve predictions over HTTP: POST /v1/models/NAME/predict and MLflow's /invocations."""
    from modelrail.serving.bundle_server import run_bundle
    from modelrail.serving.server import ServeOptions, listen_address, run_server

    if bundle is not None:
        # A bundle has no project: its log goes where the variable says (a volume, a bucket).
        options = ServeOptions(
            bundle=bundle,
            host=host or "127.0.0.1",
            port=port or 8080,
            max_rows=max_rows,
            log_predictions=log_predictions,
            monitoring_root=os.environ.get("MODELRAIL_MONITORING_ROOT") or None,
        )
        run_bundle(options, announce=lambda at: console().print(f"serving bundle {bundle} on {at}"))
        return
    client = open_client()
    listen_host, listen_port = listen_address(client, env, host, port)
    options = ServeOptions(
        environment=env,
        references=tuple(references or ()),
        only=tuple(model or ()),
        host=listen_host,
        port=listen_port,
        workers=workers,
        wait=wait,
        shadow=shadow,
        max_rows=max_rows,
        poll_interval_s=poll_interval,
        auth=auth or metrics_auth,
        metrics_auth=metrics_auth,
        log_predictions=log_predictions,
    )
    what = (
        f"{env} ({', '.join(model)})" if env and model else (env or ", ".join(options.references))
    )
    detail = f" with {workers} worker{'s' if workers > 1 else ''}" + (
        f", shadowing {shadow}" if shadow else ""
    )
    if log_predictions:
        detail += f", logging {log_predictions:.0%} of requests"
    run_server(client, options, lambda at: console().print(f"serving {what} on {at}{detail}"))


@shadow_app.command("report")
def shadow_report(
    model: Annotated[str | None, typer.Argument(help="Model name (default: all).")] = None,
    as_json: JsonOption = False,
) -> None:
    """How often the shadow version agreed with the live one, and both latencies."""
    with open_client() as client:
        totals = client.shadow_totals(model)
    if as_json:
        print_json([{**t.__dict__, "agreement": t.agreement} for t in totals])
        return
    table = Table(title="shadow traffic", title_justify="left")
    for column in (
        "model",
        "live",
        "shadow",
        "requests",
        "rows",
        "agreement",
        "live ms",
        "shadow ms",
        "last seen",
    ):
        table.add_column(column)
    for t in totals:
        table.add_row(
            t.model,
            f"{t.live_environment} v{t.live_version}",
            f"{t.shadow_environment} v{t.shadow_version}",
            str(t.requests),
            str(t.rows),
            f"{t.agreement:.1%}",
            f"{t.live_seconds / t.requests * 1000:.3f}",
            f"{t.shadow_seconds / t.requests * 1000:.3f}",
            format_time(t.last_at),
        )
    console().print(
        table if totals else "no shadow traffic recorded yet (modelrail serve --shadow ENV)"
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(shadow_app, name="shadow")

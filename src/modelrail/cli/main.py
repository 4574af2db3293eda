"""The ``modelrail`` entry point and the one place errors become exit codes."""

from __future__ import annotations

import sys

import typer

from modelrail.cli import (
    batch,
    card,
    docker,
    envs,
    exchange,
    feedback,
    login,
    mlflow_import,
    models,
    monitor,
    policy,
    project,
    reproduce,
    runs,
    serve,
    server,
    ui,
    users,
)
from modelrail.errors import ModelrailError

app = typer.Typer(
    name="modelrail",
    help="Version everything that produced a model, promote it, deploy it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(docker.app, name="docker")
app.add_typer(card.app, name="card")
app.add_typer(feedback.app, name="feedback")
project.register(app)
envs.register(app)
serve.register(app)
ui.register(app)
batch.register(app)
users.register(app)
server.register(app)
login.register(app)
policy.register(app)
mlflow_import.register(app)
reproduce.register(app)
exchange.register(app)
monitor.register(app)


def run() -> None:
    """Console-script entry point: a ModelrailError prints one line, never a traceback."""
    try:
        app(prog_name="modelrail")
    except ModelrailError as exc:
        from rich.markup import escape

        from modelrail.cli.flags import error_message
        from modelrail.cli.render import error_console

        error_console().print(f"[bold red]error:[/] {escape(error_message(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()

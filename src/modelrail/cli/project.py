"""Project-level commands: ``init``, ``datasets`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, format_time, print_json
from modelrail.config import CONFIG_FILE_NAME, init_project


def init(
    path: Annotated[Path, typer.Argument(help="Project folder (default: here).")] = Path(),
) -> None:
    """Create a modelrail project: .modelrail/ (store, artifacts) and modelrail.toml."""
    from modelrail.client import Client
    from modelrail.config import load_settings

    root = path.resolve()
    root.mkdir(parents=True, exist_ok=True)
    project_dir = init_project(root)
    settings = load_settings(cwd=root, create=False)
    Client(settings=settings).close()  # creates and migrates the store now, not on first use
    console().print(
        f"initialised modelrail project in {project_dir} (settings: {root / CONFIG_FILE_NAME})"
    )


def datasets(as_json: JsonOption = False) -> None:
    """Every dataset version per dataset and role: label, fingerprint, rows, schema."""
    with open_client() as client:
        found = client.datasets()
    if as_json:
        print_json(
            [
                {
                    "dataset": cv.details.get("dataset"),
                    "role": cv.details.get("role"),
                    "version": cv.label,
                    "fingerprint": cv.fingerprint,
                    "schema_fingerprint": cv.shape_fingerprint,
                    "rows": cv.details.get("rows"),
                    "schema": cv.details.get("schema"),
                    "source": cv.details.get("source"),
                    "runs": used,
                    "first_seen": cv.created_at,
                }
                for cv, used in found
            ]
        )
        return
    table = Table(title="datasets", title_justify="left")
    for column in (
        "dataset",
        "role",
        "version",
        "fingerprint",
        "rows",
        "columns",
        "runs",
        "first seen",
    ):
        table.add_column(column)
    for cv, used in found:
        schema = cv.details.get("schema", [])
        columns = ", ".join(name for name, _ in schema[:4]) + (" ..." if len(schema) > 4 else "")
        table.add_row(
            str(cv.details.get("dataset")),
            str(cv.details.get("role")),
            cv.label,
            cv.fingerprint[:12],
            str(cv.details.get("rows")),
            f"{len(schema)}: {columns}",
            str(used),
            format_time(cv.created_at),
        )
    console().print(table)


def demo(
    path: Annotated[
        Path, typer.Option(help="Folder for the demo project (recreated each time).")
    ] = Path(".modelrail-demo"),
) -> None:
    """Train 10 model versions, show the tracker, then promote, approve and roll back."""
    from modelrail.demo.story import run_demo

    run_demo(path.resolve(), console())


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("datasets")(datasets)
    app.command("demo")(demo)

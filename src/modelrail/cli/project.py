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
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Create or upgrade this store instead of the project's, e.g. as the "
            "PostgreSQL role that owns the schema. Not written to modelrail.toml.",
        ),
    ] = None,
    app_role: Annotated[
        str | None,
        typer.Option(
            "--app-role",
            help="PostgreSQL role the application connects as: it may read and write "
            "rows, only add to the append-only history, and not change the schema.",
        ),
    ] = None,
) -> None:
    """Create a modelrail project: .modelrail/ (store, artifacts) and modelrail.toml."""
    from modelrail.client import Client
    from modelrail.config import load_settings
    from modelrail.store.db import HEAD_REVISION

    root = path.resolve()
    root.mkdir(parents=True, exist_ok=True)
    project_dir = init_project(root)
    settings = load_settings(cwd=root, create=False)
    # Creates and migrates the store now, not on first use.
    with Client(store_url=store, settings=settings) as client:
        grants = None if app_role is None else client.grant_app_role(app_role)
        shown_store = client.store_address
    out = console()
    out.print(
        f"initialised modelrail project in {project_dir} (settings: {root / CONFIG_FILE_NAME})",
        markup=False,
    )
    if store is not None or grants is not None:
        out.print(f"store {shown_store} is at schema revision {HEAD_REVISION}", markup=False)
    if grants is not None:
        out.print(
            f"role {grants.role!r} may read and write {len(grants.read_write)} tables in "
            f"schema {grants.schema!r}, may only add rows to {', '.join(grants.append_only)}, "
            "and cannot change the schema or its triggers",
            markup=False,
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

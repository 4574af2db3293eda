"""``modelrail models``: registered models and their versions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, format_metric, format_time, print_json

app = typer.Typer(help="Registered models and their numbered versions.")


@app.callback(invoke_without_command=True)
def list_models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every model with its number of versions and latest version."""
    if ctx.invoked_subcommand is not None:
        return
    with open_client() as client:
        models = client.list_models()
    if as_json:
        print_json(models)
        return
    table = Table(title="models", title_justify="left")
    for column in ("model", "versions", "latest", "created"):
        table.add_column(column)
    for model in models:
        table.add_row(
            model.name,
            str(model.version_count),
            str(model.latest_version or "-"),
            format_time(model.created_at),
        )
    console().print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: JsonOption = False,
) -> None:
    """Every version of a model: run, flavor, artifact sha256, signature and metrics."""
    with open_client() as client:
        versions = client.list_versions(name)
        metrics = {
            v.version: (client.get_run(v.run_id).metrics if v.run_id else {}) for v in versions
        }
    if as_json:
        print_json([{**_plain(v), "metrics": metrics[v.version]} for v in versions])
        return
    table = Table(title=f"model {name}", title_justify="left")
    for column in ("version", "run", "flavor", "sha256", "inputs", "metrics", "created", "by"):
        table.add_column(column)
    for v in versions:
        shown = ", ".join(
            f"{k} {format_metric(k, val)}" for k, val in sorted(metrics[v.version].items())[:4]
        )
        table.add_row(
            str(v.version),
            (v.run_id or "-")[:8],
            v.flavor,
            v.artifact_sha256[:12],
            f"{len(v.signature.inputs)} columns",
            shown or "-",
            format_time(v.created_at),
            v.created_by,
        )
    console().print(table)


def _plain(version: object) -> dict[str, object]:
    from modelrail.cli.render import to_plain

    result = to_plain(version)
    assert isinstance(result, dict)
    return result

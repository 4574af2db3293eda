"""``modelrail reproduce REF``: rebuild a version from its record, rerun it, and compare."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, error_console, print_json
from modelrail.errors import InvalidInputError, NotReproducedError
from modelrail.portability.reproduce import ReproduceReport, report_json
from modelrail.portability.reproduce_compare import DIFFERS, SAME, SKIPPED

_STYLE = {SAME: "green", DIFFERS: "bold red"}


def reproduce(
    reference: Annotated[
        str, typer.Argument(help="NAME:VERSION, NAME@ENV, NAME (latest) or a run id.")
    ],
    reuse_env: Annotated[
        bool,
        typer.Option(
            "--reuse-env",
            help="Run in the current Python environment (only when its packages are the "
            "recorded ones) instead of building one.",
        ),
    ] = False,
    find_links: Annotated[
        list[str] | None,
        typer.Option(help="A folder of wheels to install the recorded packages from (repeatable)."),
    ] = None,
    no_index: Annotated[
        bool, typer.Option("--no-index", help="Install only from the --find-links folders.")
    ] = False,
    installer: Annotated[
        str, typer.Option(help="What builds the environment: auto (uv if installed), uv or pip.")
    ] = "auto",
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="ROLE=PATH: where a dataset is now, if not where the run read it "
            "(e.g. train=/data/churn.csv; repeatable).",
        ),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="How far a metric or prediction may differ and count as same.")
    ] = 1e-9,
    ignore_metric: Annotated[
        list[str] | None,
        typer.Option(help="A metric not to compare, such as a training time (repeatable)."),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the scratch folder (worktree and environment).")
    ] = False,
    repository: Annotated[
        str | None,
        typer.Option(help="The git repository holding the commit (default: the one here)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild a model version from its record and check it comes out the same.

    Checks the recorded commit out into a scratch git worktree, applies the stored
    uncommitted changes and untracked files, checks every dataset, builds an environment
    with the recorded package versions (uv or pip), reruns the entry point as a new run
    tagged as a reproduction, and compares code, environment, data, params, metrics and
    predictions on the test data. Exits 15 when something differs, 14 when a step cannot be
    done; the scratch folder is removed either way unless --keep is given."""
    places = data_places(data or [])
    log = error_console()
    with open_client() as client:
        report = client.reproduce(
            reference,
            reuse_env=reuse_env,
            find_links=find_links or (),
            use_index=not no_index,
            installer=installer,
            data=places,
            tolerance=tolerance,
            ignore_metrics=ignore_metric or (),
            keep=keep,
            repository=repository,
            progress=lambda line: log.print(f"[dim]{escape(line)}[/]"),
        )
    if as_json:
        print_json(report_json(report))
    else:
        _print(report)
    if not report.reproduced:
        raise NotReproducedError(
            f"{reference} was rebuilt but differs in {', '.join(report.differences)} "
            f"(new run {report.rebuilt_run[:8]})"
        )


def data_places(items: list[str]) -> dict[str, str]:
    """``--data ROLE=PATH`` values as role -> path."""
    places: dict[str, str] = {}
    for item in items:
        role, sep, path = item.partition("=")
        if not sep or not role.strip() or not path.strip():
            raise InvalidInputError(
                f"{{data}} {item!r} must be ROLE=PATH, e.g. train=/data/train.csv",
                params=("data",),
            )
        places[role.strip()] = path.strip()
    return places


def _print(report: ReproduceReport) -> None:
    out = console()
    table = Table(box=None, pad_edge=False)
    for column in ("component", "recorded", "rebuilt", "result"):
        table.add_column(column)
    for row in report.rows:
        result = row.result
        if row.component.startswith("metric") and result == SAME:
            result = f"same (tolerance {report.tolerance:g})"
        if row.detail:
            result = f"{result}: {row.detail}"
        style = _STYLE.get(row.result)
        shown = f"[{style}]{escape(result)}[/]" if style else escape(result)
        table.add_row(escape(row.component), escape(row.recorded), escape(row.rebuilt), shown)
    out.print(table)
    for note in report.notes:
        out.print(f"note: {note}", markup=False)
    if report.kept_at:
        out.print(f"kept the scratch folder {report.kept_at}", markup=False)
    if report.reproduced:
        skipped = [row.component for row in report.rows if row.result == SKIPPED]
        exactly = "" if skipped else " exactly"
        unchecked = f"; not compared: {', '.join(skipped)}" if skipped else ""
        out.print(
            f"reproduced {report.reference}{exactly} (new run {report.rebuilt_run[:8]}, "
            f"linked as a reproduction){unchecked}",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)

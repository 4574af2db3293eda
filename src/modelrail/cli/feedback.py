"""``modelrail feedback load``: attach true outcomes (labels) to logged predictions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, print_json

app = typer.Typer(
    no_args_is_help=True,
    help="True outcomes (labels) of logged predictions, for live metrics: 'feedback load'.",
)


@app.command("load")
def load(
    model: Annotated[
        str, typer.Option("--model", help="The model whose predictions the labels are for.")
    ],
    id_column: Annotated[
        list[str],
        typer.Option(
            "--id-column",
            help="The column holding the request id the prediction was logged with (its "
            "X-Request-Id, or a batch job's id column); repeat for a batch job with several "
            "id columns, in the same order.",
        ),
    ],
    label: Annotated[str, typer.Option("--label", help="The column holding the true outcome.")],
    files: Annotated[
        list[str] | None,
        typer.Argument(
            help="CSV or Parquet files, or folders of them (local or s3://, gs://), with one "
            "label per row.",
            show_default=False,
        ),
    ] = None,
    row_column: Annotated[
        str | None,
        typer.Option(
            "--row-column",
            help="The column holding the row within a request of several rows (default: 0, "
            "one row per request).",
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option("--query", help="A SQL query returning the labels, instead of files."),
    ] = None,
    query_url: Annotated[
        str | None,
        typer.Option("--query-url", help="The database the --query runs on (a SQLAlchemy URL)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Load true outcomes for logged predictions from files or a SQL query.

    Each label is matched to a logged prediction by request id (and row). A prediction
    labelled again gets the newest label (every load is kept); labels whose prediction is
    not logged yet are kept for when it is. The labels are checked whole first: a missing
    column, an empty input or a row without an id stores nothing (exit 2). Run it where the
    prediction logs are: the machine that serves, or one sharing its [monitoring] root."""
    with open_client() as client:
        summary = client.load_feedback(
            model,
            inputs=files or (),
            query=query,
            query_url=query_url,
            id_columns=id_column,
            label_column=label,
            row_column=row_column,
        )
    if as_json:
        print_json(summary)
        return
    notes = []
    if summary.replaced:
        notes.append(f"{summary.replaced:,} replace earlier labels")
    if summary.repeated:
        notes.append(f"{summary.repeated:,} repeat an id of this load (the last row wins)")
    if summary.unmatched:
        notes.append(
            f"{summary.unmatched:,} match no logged prediction yet (kept: it may be logged later)"
        )
    if summary.skipped:
        notes.append(f"{summary.skipped:,} rows without a label skipped")
    line = f"loaded {summary.labels:,} labels for {summary.model} from {summary.source}"
    console().print(escape(line + (": " + "; ".join(notes) if notes else "")))

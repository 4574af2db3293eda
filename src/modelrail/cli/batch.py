"""``modelrail batch``: score data into a database, Redis or Parquet, and see past runs."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelrail.batch.spec import DEFAULT_BATCH_ROWS, DEFAULT_PART_ROWS
from modelrail.cli.batch_options import (
    BadRowsOption,
    BatchRowsOption,
    EngineOption,
    EnvOption,
    IdOption,
    InputOption,
    OutputOption,
    PartRowsOption,
    QueryOption,
    QueryUrlOption,
    TableOption,
    TtlOption,
    job_spec_from_options,
)
from modelrail.cli.context import open_client
from modelrail.cli.render import (
    MAX_COUNT,
    JsonOption,
    console,
    format_duration,
    format_time,
    key_value_table,
    print_json,
    to_plain,
)
from modelrail.entities import BatchRun
from modelrail.monitoring.profiles import BatchProfile

app = typer.Typer(help="Batch scoring: run jobs, resume them, see their history.")
log = logging.getLogger("modelrail")
_LOG_EVERY_SECONDS = 5.0
_WHY_WIDTH = 72  # of a failed run's error, in the history table (`batch show` has it whole)


@app.command("run")
def run(
    reference: Annotated[str, typer.Argument(help="NAME@ENV, NAME:VERSION or NAME (latest).")],
    inputs: InputOption = None,
    query: QueryOption = None,
    query_url: QueryUrlOption = None,
    output: OutputOption = None,
    table: TableOption = None,
    id_column: IdOption = None,
    env: EnvOption = None,
    ttl: TtlOption = None,
    on_bad_rows: BadRowsOption = "fail",
    batch_rows: BatchRowsOption = DEFAULT_BATCH_ROWS,
    part_rows: PartRowsOption = DEFAULT_PART_ROWS,
    engine: EngineOption = "local",
    as_json: JsonOption = False,
) -> None:
    """Score the input with the version REFERENCE names now and write the predictions
    exactly once (a re-run replaces its rows; a killed run leaves nothing half-written)."""
    with open_client() as client:
        spec = job_spec_from_options(
            client,
            reference,
            inputs=inputs,
            query=query,
            query_url=query_url,
            output=output,
            table=table,
            id_columns=id_column,
            env=env,
            ttl=ttl,
            on_bad_rows=on_bad_rows,
            batch_rows=batch_rows,
            part_rows=part_rows,
            engine=engine,
        )
        with _progress(f"scoring {spec.reference}", quiet=as_json) as report:
            record = client.run_batch(spec, progress=report)
    _print_outcome(record, as_json)


@app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument(help="Batch run id (or a prefix of 4+ characters).")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            help="The run's output URL again, with its password (a record keeps none).",
        ),
    ] = None,
    query_url: Annotated[
        str | None,
        typer.Option(
            "--query-url",
            help="The run's query database URL again, with its password (a record keeps none).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Finish a killed or failed run with the model version it started with."""
    with open_client() as client, _progress(f"resuming {run_id}", quiet=as_json) as report:
        record = client.resume_batch(run_id, output=output, query_url=query_url, progress=report)
    _print_outcome(record, as_json)


@app.command("history")
def history(
    job: Annotated[str | None, typer.Option(help="Only runs of this scheduled job.")] = None,
    model: Annotated[str | None, typer.Option(help="Only runs of this model.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status (running, succeeded, failed).")
    ] = None,
    limit: Annotated[
        int, typer.Option(help="Runs to show, newest first.", min=1, max=MAX_COUNT)
    ] = 50,
    as_json: JsonOption = False,
) -> None:
    """Every batch run: model version, input fingerprint, rows, status and time."""
    with open_client() as client:
        runs = client.batch_runs(job=job, model=model, status=status, limit=limit)
    if as_json:
        print_json(runs)
        return
    out = console()
    if not runs:
        out.print("no batch runs yet: start one with `modelrail batch run`")
        return
    out.print(_history_table(runs))


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Batch run id (or a prefix of 4+ characters).")],
    as_json: JsonOption = False,
) -> None:
    """One batch run in full, with its error if it failed, and what it scored: its input per
    column (quantiles or the most frequent values) and the distribution of its predictions."""
    with open_client() as client:
        record = client.batch_run(run_id)
        profile = client.batch_profile(record.id)
    if as_json:
        print_json({**to_plain(record), "profile": None if profile is None else profile.to_json()})
        return
    out = console()
    out.print(_details(record, profile))
    if profile is not None and profile.input is not None and profile.input.columns:
        out.print(_profile_table(profile))


def register(root: typer.Typer) -> None:
    from modelrail.cli import batch_schedule

    root.add_typer(app, name="batch")
    batch_schedule.register(app, root)


# -- rendering ---------------------------------------------------------------------------


@contextmanager
def _progress(label: str, *, quiet: bool) -> Iterator[Callable[[int, int | None], None]]:
    """A Rich bar with rows/s on a terminal, a log line every few seconds elsewhere."""
    started = time.perf_counter()
    if quiet:
        yield lambda rows, total: None
        return
    if not sys.stderr.isatty():
        last = [started]
        err = Console(stderr=True, highlight=False)

        def line(rows: int, total: int | None) -> None:
            now = time.perf_counter()
            if now - last[0] >= _LOG_EVERY_SECONDS:
                last[0] = now
                rate = rows / max(now - started, 1e-9)
                of = f" of {total:,}" if total else ""
                err.print(f"{label}: {rows:,}{of} rows, {rate:,.0f} rows/s")

        yield line
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows  {task.fields[rate]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with bar:
        task = bar.add_task(label, total=None, rate="")

        def update(rows: int, total: int | None) -> None:
            rate = rows / max(time.perf_counter() - started, 1e-9)
            bar.update(task, completed=rows, total=total, rate=f"{rate:,.0f} rows/s")

        yield update


def _print_outcome(record: BatchRun, as_json: bool) -> None:
    if as_json:
        print_json(record)
        return
    seconds = record.duration or 0.0
    rate = record.rows_read / seconds if seconds > 0 else 0.0
    rejected = f", {record.rows_rejected:,} rejected" if record.rows_rejected else ""
    console().print(
        f"batch run {record.id[:12]} {record.status}: {record.model} {record.version} "
        f"({record.reference}) scored {record.rows_read:,} rows, wrote "
        f"{record.rows_written:,}{rejected} to {record.output} in "
        f"{format_duration(record.duration)} ({rate:,.0f} rows/s)"
    )


def _history_table(runs: list[BatchRun]) -> Table:
    table = Table(title="batch runs", title_justify="left")
    for column in ("run", "started", "job", "model", "version", "input", "rows", "status", "took"):
        table.add_column(column)
    table.add_column("why", max_width=_WHY_WIDTH, no_wrap=True, overflow="ellipsis")
    for r in runs:
        rows = f"{r.rows_written:,}" + (
            f" (+{r.rows_rejected:,} rejected)" if r.rows_rejected else ""
        )
        status = {"succeeded": "[green]succeeded[/]", "failed": "[bold red]failed[/]"}.get(
            r.status, r.status
        )
        table.add_row(
            r.id[:12],
            format_time(r.started_at),
            r.job or "-",
            r.model,
            str(r.version),
            r.input_fingerprint[:12] or "-",
            rows,
            status,
            format_duration(r.duration),
            (r.error or "-") if r.status == "failed" else "",
        )
    return table


def _details(r: BatchRun, profile: BatchProfile | None) -> Table:
    scored = None
    if profile is not None and profile.input is not None:
        scored = f"{len(profile.input.columns)} input columns of {profile.input.rows:,} rows"
        scored += f" (from row {profile.first_row:,}: resumed)" if profile.first_row else ""
    predicted = None if profile is None or profile.prediction is None else profile.prediction
    return key_value_table(
        f"batch run {r.id}",
        [
            ("status", r.status),
            ("model", f"{r.model} {r.version} (asked for {r.reference})"),
            ("job", r.job),
            ("trigger", r.trigger),
            ("engine", r.engine),
            ("input", r.input_description),
            ("input fingerprint", r.input_fingerprint or None),
            ("output", r.output),
            ("rows read", f"{r.rows_read:,}"),
            ("rows written", f"{r.rows_written:,}"),
            ("rows rejected", f"{r.rows_rejected:,}"),
            ("started", format_time(r.started_at)),
            ("finished", format_time(r.finished_at)),
            ("took", format_duration(r.duration)),
            ("by", f"{r.user} on {r.host} (pid {r.pid})"),
            ("error", r.error),
            ("profiled", scored),
            ("predictions", None if predicted is None else predicted.summary(top=3)),
        ],
    )


def _profile_table(profile: BatchProfile) -> Table:
    table = Table(title="input", title_justify="left")
    for heading in ("column", "kind", "values", "missing", "summary"):
        table.add_column(heading)
    assert profile.input is not None
    for name, column in profile.input.columns.items():
        summary = column.summary(top=3)
        if column.kind == "numeric" and column.count:
            summary += f", median {column.quantiles[50]:.3g} ({column.min:.3g} to {column.max:.3g})"
        missing = f"{column.missing_rate:.1%}"
        table.add_row(name, column.kind, f"{column.count:,}", missing, summary)
    return table

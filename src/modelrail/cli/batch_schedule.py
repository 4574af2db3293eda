"""``modelrail batch schedule / schedules / unschedule`` and ``modelrail scheduler``."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from modelrail.batch.records import for_the_record
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
from modelrail.cli.render import JsonOption, console, format_time, print_json, to_plain
from modelrail.errors import BatchInputError

if TYPE_CHECKING:
    from modelrail.batch.schedules import ScheduleStatus


def schedule(
    name: Annotated[str, typer.Argument(help="Name of the schedule (letters, digits, . _ -).")],
    reference: Annotated[
        str, typer.Argument(help="Model to score with: NAME@ENV, NAME:VERSION or NAME.")
    ],
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron", help="When to run: a crontab expression such as '0 2 * * *', or @daily."
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="IANA time zone of --cron, e.g. Europe/Berlin (UTC)."),
    ] = None,
    catch_up: Annotated[
        str | None,
        typer.Option(
            "--catch-up",
            help="Fire times missed while no scheduler ran: run 'once' (default), 'all' or 'skip'.",
        ),
    ] = None,
    when_new_files: Annotated[
        str | None,
        typer.Option(
            "--when-new-files",
            help="Instead of --cron: score each new file matching this glob, once.",
        ),
    ] = None,
    inputs: InputOption = None,
    query: QueryOption = None,
    query_url: QueryUrlOption = None,
    output: OutputOption = None,
    table: TableOption = None,
    id_columns: IdOption = None,
    env: EnvOption = None,
    ttl: TtlOption = None,
    on_bad_rows: BadRowsOption = "fail",
    batch_rows: BatchRowsOption = DEFAULT_BATCH_ROWS,
    part_rows: PartRowsOption = DEFAULT_PART_ROWS,
    engine: EngineOption = "local",
    replace: Annotated[
        bool, typer.Option("--replace", help="Change the schedule of this name if it exists.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Schedule a batch job on a cron schedule or for each new file; the scheduler runs it."""
    from modelrail.batch.schedules import timing_of

    if when_new_files is not None and (inputs or query is not None):
        raise BatchInputError(
            "--when-new-files gives the input (each new file): leave out --input and --query"
        )
    with open_client() as client:
        spec = job_spec_from_options(
            client,
            reference,
            inputs=[when_new_files] if when_new_files is not None else inputs,
            query=query,
            query_url=query_url,
            output=output,
            table=table,
            id_columns=id_columns,
            env=env,
            ttl=ttl,
            on_bad_rows=on_bad_rows,
            batch_rows=batch_rows,
            part_rows=part_rows,
            engine=engine,
        )
        created = client.schedule_batch(
            name,
            spec,
            cron=cron,
            timezone=timezone,
            file_pattern=when_new_files,
            catch_up=catch_up,
            replace=replace,
        )
    if as_json:
        print_json(created)
        return
    what = f"scheduled {created.name}: {created.spec.reference}"
    if created.kind == "cron":
        timing = timing_of(created)
        what += (
            f" at '{created.cron}' ({created.timezone}, catch-up {created.catch_up}); "
            f"next run {timing.describe(created.next_run_at)}"
        )
    else:
        what += f" for each new file matching {created.file_pattern}"
    console().print(escape(what))
    console().print("[dim]`modelrail scheduler` runs it (keep one running, e.g. as a service)[/]")


def schedules(as_json: JsonOption = False) -> None:
    """List batch schedules: what runs when, the next run and how the last one ended."""
    from modelrail.batch.schedules import timing_of

    with open_client() as client:
        statuses = client.batch_schedules()
    if as_json:
        print_json([_plain(status) for status in statuses])
        return
    out = console()
    if not statuses:
        out.print("no batch schedules: add one with `modelrail batch schedule`")
        return
    grid = Table(title="batch schedules", title_justify="left")
    for column in ("name", "model", "kind", "when", "tz", "catch-up", "next run", "last run"):
        grid.add_column(column)
    for status in statuses:
        item = status.schedule
        when = item.cron if item.kind == "cron" else item.file_pattern
        next_run = (
            timing_of(item).describe(item.next_run_at) if item.kind == "cron" else "on arrival"
        )
        grid.add_row(
            escape(item.name),
            escape(item.spec.reference),
            item.kind,
            escape(when or "-"),
            item.timezone or "-",
            item.catch_up if item.kind == "cron" else "-",
            next_run if item.enabled else "disabled",
            _last_run(status),
        )
    out.print(grid)


def unschedule(
    name: Annotated[str, typer.Argument(help="Name of the schedule to remove.")],
) -> None:
    """Remove a batch schedule (a run in progress finishes; past runs stay in the history)."""
    with open_client() as client:
        removed = client.unschedule_batch(name)
    running = " (its current run goes on to the end)" if removed.running(time.time()) else ""
    console().print(escape(f"removed schedule {removed.name}{running}"))


def scheduler(
    once: Annotated[
        bool, typer.Option("--once", help="Run what is due now, then exit (for cron or CI).")
    ] = False,
    poll: Annotated[
        float,
        typer.Option("--poll", help="Seconds between looks for due jobs and new files.", min=0.1),
    ] = 30.0,
) -> None:
    """Run due batch jobs (cron schedules and new files) until Ctrl-C or SIGTERM; safe to run
    as a service, and several schedulers can share one store."""
    with _logging_to_stderr(), open_client() as client:
        runner = client.scheduler()
        if once:
            outcomes = runner.tick()
            failed = [o for o in outcomes if o.status == "failed"]
            console().print(
                f"{len(outcomes)} job(s) ran: {len(outcomes) - len(failed)} succeeded, "
                f"{len(failed)} failed"
            )
            if failed:
                raise typer.Exit(1)
            return
        stop = threading.Event()
        with _stopping_on_signals(stop):
            runner.run_forever(stop, poll)


def register(batch_app: typer.Typer, root_app: typer.Typer) -> None:
    batch_app.command("schedule")(schedule)
    batch_app.command("schedules")(schedules)
    batch_app.command("unschedule")(unschedule)
    root_app.command("scheduler")(scheduler)


# -- helpers -------------------------------------------------------------------------------


def _last_run(status: ScheduleStatus) -> str:
    parts = []
    if status.running:
        parts.append("[bold]running[/]")
    run = status.last_run
    if run is not None:
        colour = {"succeeded": "green", "failed": "red"}.get(run.status, "yellow")
        parts.append(f"[{colour}]{run.status}[/] {format_time(run.started_at)} ({run.id[:8]})")
    if status.files:
        parts.append(", ".join(f"{count} {state}" for state, count in sorted(status.files.items())))
    return "  ".join(parts) or "-"


def _plain(status: ScheduleStatus) -> dict[str, Any]:
    # Shown with the passwords of its URLs hidden, as a run record keeps them.
    shown = replace(status.schedule, spec=for_the_record(status.schedule.spec))
    plain: dict[str, Any] = to_plain(shown)
    run = status.last_run
    plain["running"] = status.running
    plain["last_run"] = (
        None
        if run is None
        else {
            "id": run.id,
            "status": run.status,
            "trigger": run.trigger,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "rows_written": run.rows_written,
            "error": run.error,
        }
    )
    if status.schedule.kind == "files":
        plain["files"] = status.files
    return plain


@contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """The scheduler reports through the ``modelrail`` logger: one line per start and end."""
    logger = logging.getLogger("modelrail")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM stops after the running job; a second one interrupts it."""

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        logging.getLogger("modelrail.scheduler").info(
            "scheduler: %s received: stopping after the running job (again to interrupt it)",
            signal.Signals(signum).name,
        )

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

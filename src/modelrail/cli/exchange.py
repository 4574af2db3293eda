"""``modelrail export`` and ``modelrail import``: versions between stores, as one file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, format_time, print_json, stderr_progress
from modelrail.portability.bundle_write import Progress

_QUIET_BELOW = 8 << 20  # smaller bundles move too fast for a progress bar to help


def export(
    references: Annotated[
        list[str] | None,
        typer.Argument(
            help="Versions to export: NAME:VERSION, NAME@ENV, or NAME for every version."
        ),
    ] = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The bundle file to write (e.g. churn-v7.mrbundle)."),
    ] = Path("modelrail.mrbundle"),
    everything: Annotated[
        bool, typer.Option("--all", help="Every version of every model.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Write versions with their runs, datasets' metadata, metrics, files and promotion
    history into one bundle file that 'modelrail import' reads into another store."""
    with open_client() as client, _bar(as_json) as progress:
        summary = client.export_bundle(
            references or [], output, everything=everything, progress=progress
        )
    if as_json:
        print_json(summary)
        return
    console().print(
        f"exported {len(summary.versions)} version(s) ({', '.join(summary.versions)}), "
        f"{summary.runs} run(s), {summary.events} history event(s) and {summary.files} "
        f"file(s) to {summary.path} ({summary.size:,} bytes)"
    )


def import_(
    bundle: Annotated[Path, typer.Argument(help="The bundle file to import (.mrbundle).")],
    as_json: JsonOption = False,
) -> None:
    """Check a bundle whole, then add its versions, runs and files to this store with their
    original ids, numbers, times and authors; importing it again changes nothing."""
    with open_client() as client, _bar(as_json) as progress:
        summary = client.import_bundle(bundle, progress=progress)
    report = summary.report
    if as_json:
        print_json(summary)
        return
    out = console()
    if not report.changed:
        out.print(
            f"nothing to import: the {len(report.versions_present)} version(s) and "
            f"{len(report.runs_present)} run(s) of {summary.bundle} are already in this "
            "store, identical"
        )
        return
    added = ", ".join(report.versions_added) or "no new versions"
    out.print(
        f"imported {added}; {len(report.runs_added)} run(s), {summary.files} file(s) and "
        f"{report.events_added} event(s) of imported history from {summary.bundle} "
        f"(exported from {summary.manifest.source_store} by {summary.manifest.created_by}, "
        f"{format_time(summary.manifest.created_at)})"
    )
    if report.versions_present or report.runs_present:
        out.print(
            f"already here, identical: {len(report.versions_present)} version(s), "
            f"{len(report.runs_present)} run(s)"
        )
    for relabel in report.relabelled:
        out.print(
            f"run {relabel.run_id[:8]} {relabel.role}: labelled {relabel.label} here "
            f"({relabel.source_label} in the source store is other content here)"
        )


def imports(
    model: Annotated[str | None, typer.Argument(help="Only this model's imported history.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The imports into this store, and the history the imported versions had in the
    stores they came from (kept apart: it never counts as this store's history)."""
    with open_client() as client:
        done = client.imports()
        history = client.imported_history(model)
    if as_json:
        print_json({"imports": done, "imported_history": history})
        return
    out = console()
    table = Table(title="imports", title_justify="left")
    for column in ("#", "when", "who", "from", "store", "versions", "runs"):
        table.add_column(column)
    for row in done:
        table.add_row(
            str(row.id),
            format_time(row.imported_at),
            row.imported_by,
            f"{row.kind} {row.source}",
            row.source_store,
            ", ".join(row.summary.get("versions_added", [])) or "-",
            str(len(row.summary.get("runs_added", []))),
        )
    out.print(table)
    table = Table(
        title="imported history (as it happened in the source store)", title_justify="left"
    )
    for column in ("when", "model", "env", "action", "from", "to", "who", "why"):
        table.add_column(column)
    for event in sorted(history, key=lambda e: e.created_at):
        table.add_row(
            format_time(event.created_at),
            event.model,
            event.environment,
            event.action,
            str(event.from_version or "-"),
            str(event.to_version or "-"),
            event.actor,
            event.reason or "-",
        )
    out.print(table)


class _Bar:
    """A Rich progress bar on stderr for one step at a time (verify, store files, ...)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.task: Any = None

    def begin(self, what: str, total: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(what, total=total, visible=total >= _QUIET_BELOW)

    def advance(self, amount: int) -> None:
        self.bar.advance(self.task, amount)


@contextmanager
def _bar(as_json: bool) -> Iterator[Progress | None]:
    with stderr_progress(as_json, in_bytes=True) as bar:
        yield None if bar is None else _Bar(bar)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
    app.command("imports")(imports)

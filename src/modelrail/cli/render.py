"""Rendering helpers shared by commands: Rich tables for people, JSON and CSV for scripts."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

# Shared with the dashboard; commands import it from here.
from modelrail.tracking.tracker_columns import format_duration as format_duration
from modelrail.tracking.tracker_columns import format_metric as format_metric
from modelrail.tracking.tracker_columns import format_time as format_time

# The --json flag every listing command takes.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
# The largest count or row offset a store can take (SQL's BIGINT); larger is a usage error.
MAX_COUNT = 2**63 - 1


def console() -> Console:
    # Piped output (CI logs, files, `| less`) would be squeezed to 80 columns otherwise.
    width = None if sys.stdout.isatty() else 240
    return Console(highlight=False, soft_wrap=False, width=width)


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def to_plain(value: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_plain(value), indent=2, sort_keys=False, default=str) + "\n")


def print_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def key_value_table(title: str, pairs: Iterable[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in pairs:
        table.add_row(key, "-" if value is None else str(value))
    return table


@contextmanager
def stderr_progress(as_json: bool, *, in_bytes: bool) -> Iterator[Any]:
    """A transient Rich progress bar on stderr (counting bytes or items), or None when the
    output is JSON or stderr is not a terminal."""
    if as_json or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    count = DownloadColumn() if in_bytes else MofNCompleteColumn()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        count,
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        yield bar

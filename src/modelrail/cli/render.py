"""Rendering helpers shared by commands: Rich tables for people, JSON and CSV for scripts."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

_PERCENT_HINTS = ("accuracy", "precision", "recall", "f1", "auc", "rate")


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


def format_metric(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if 0.0 <= value <= 1.0 and any(hint in key.lower() for hint in _PERCENT_HINTS):
        return f"{value * 100:.1f}%"
    return f"{value:.4g}"


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def key_value_table(title: str, pairs: Iterable[tuple[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in pairs:
        table.add_row(key, "-" if value is None else str(value))
    return table

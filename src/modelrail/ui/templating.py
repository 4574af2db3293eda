"""The Jinja environment of the dashboard: templates shipped in the package, autoescaped,
with the filters the pages use to show times, durations, sizes and metric values."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from modelrail.tracking.tracker_columns import format_duration, format_metric, format_time


def format_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def format_count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_value(value: Any) -> str:
    """A parameter value as its JSON text (strings without quotes)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def test_id(text: str) -> str:
    """A metric or column name as part of a data-testid: letters, digits, ``-`` and ``_``."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def make_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("modelrail.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        time=format_time,
        duration=format_duration,
        size=format_size,
        count=format_count,
        value=format_value,
        testid=test_id,
    )
    env.globals["metric"] = format_metric
    return env

"""``modelrail monitor REF``: drift of a deployed model's inputs and predictions, and its
live metrics on labelled predictions, against its reference."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, print_json
from modelrail.errors import InvalidInputError
from modelrail.monitoring.report import (
    ALERT,
    NO_DATA,
    NO_REFERENCE,
    WATCH,
    FeatureDrift,
    LiveMetric,
    MonitorReport,
    WindowReport,
)

# The exit code when a check finds an alert (a report, not an error: the table or JSON is
# printed first), so cron and CI can act on it. Error codes are 1-15 (modelrail.errors).
ALERT_EXIT_CODE = 16
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_STYLE = {ALERT: "bold red", WATCH: "yellow", NO_DATA: "dim", NO_REFERENCE: "dim"}


def monitor(
    reference: Annotated[
        str,
        typer.Argument(
            help="NAME@ENV (what the environment answered), NAME:VERSION (what that version "
            "answered anywhere) or NAME (the latest version)."
        ),
    ],
    since: Annotated[
        str,
        typer.Option("--since", help="Start: a duration before --until (7d, 12h, 30m) or a date."),
    ] = "7d",
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="End: a date or time (ISO 8601, UTC unless it says), or a "
            "duration before now. Default: now.",
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option("--window", help="Also judge each window of this length (1d, 6h)."),
    ] = None,
    notify: Annotated[
        bool,
        typer.Option(
            "--notify",
            help="Keep this check as the environment's latest (the Prometheus gauges show it) "
            "and notify when its alerts changed since the last one, as the scheduler does.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare a deployed model's logged inputs and predictions with its reference profile,
    and its metrics on labelled predictions with the ones its run logged.

    Drift per feature is the population stability index over the reference's bins (with the
    Kolmogorov-Smirnov statistic for numbers, the Jensen-Shannon distance for categories);
    the environment's policy (drift_watch, drift_alert, min_live, max_live) gives each a
    status. Exits 16 when anything is in alert (after printing the report), 0 otherwise."""
    now = time.time()
    end = now if until is None else _moment(until, now, "until")
    start = _moment(since, end, "since")
    window_seconds = None if window is None else _duration(window, "window_seconds")
    with open_client() as client:
        if notify:
            report = client.check_monitoring(
                reference, since=start, until=end, window_seconds=window_seconds, now=now
            ).report
        else:
            report = client.monitor(
                reference, since=start, until=end, window_seconds=window_seconds, now=now
            )
    if as_json:
        print_json(report.to_json())
    else:
        print_report(report, console(), since if until is None else None)
    if report.status == ALERT:
        raise typer.Exit(ALERT_EXIT_CODE)


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)


# -- reading times -------------------------------------------------------------------------


def _duration(text: str, param: str) -> float:
    found = _DURATION.match(text)
    if found is None or float(found[1]) <= 0:
        raise InvalidInputError(
            f"{{{param}}} must be a duration such as 30m, 12h, 7d or 2w, not {text!r}",
            params=(param,),
        )
    return float(found[1]) * _UNITS[found[2]]


def _moment(text: str, now: float, param: str) -> float:
    """A duration before ``now``, or an ISO 8601 date or time (UTC unless it names a zone)."""
    if _DURATION.match(text):
        return now - _duration(text, param)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"{{{param}}} must be a duration before now (7d, 12h) or a date such as "
            f"2024-06-01 or 2024-06-01T08:00, not {text!r}",
            params=(param,),
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- rendering -----------------------------------------------------------------------------


def print_report(report: MonitorReport, out: Console, span: str | None = None) -> None:
    """``report`` as ``modelrail monitor`` prints it; ``span`` names the range in the
    current column's heading ("last 7d"), else it says "logged"."""
    overall = report.overall
    where = report.model + (f"@{report.environment}" if report.environment else "")
    period = f"{_time(report.since)} to {_time(report.until)}"
    if overall.rows == 0:
        out.print(
            escape(
                f"{where}: no predictions were logged from {period}. Log them with "
                "'modelrail serve --log-predictions RATE' or log_predictions in "
                "[environments.ENV.monitoring]; labels alone cannot be judged."
            )
        )
        return
    versions = ", ".join(str(v) for v in overall.versions)
    out.print(
        escape(
            f"{where} (reference: version {report.version}, {report.reference_label}): "
            f"{overall.requests:,.0f} requests ({overall.rows:,} logged rows, "
            f"{overall.labelled:,} labelled) from {period}, answered by version {versions}"
        )
    )
    current = f"last {span}" if span else "logged"
    out.print(_overall_table(report, current))
    if len(report.by_version) > 1:
        out.print(_windows_table("per version", report.by_version, by_version=True))
    busy = tuple(w for w in report.windows if w.rows)
    if busy:
        out.print(_windows_table("per window", busy, by_version=False))
        if len(busy) < len(report.windows):
            quiet = len(report.windows) - len(busy)
            out.print(f"[dim]{quiet:,} window(s) without logged predictions not shown[/]")
    for alert in report.alerts:
        out.print(escape(f"ALERT {alert}"), style="bold red")


def _overall_table(report: MonitorReport, current: str) -> Table:
    overall = report.overall
    grid = Table(box=None, pad_edge=False, header_style="bold")
    grid.add_column("feature")
    grid.add_column(f"reference ({report.reference_label})")
    grid.add_column(current)
    grid.add_column("drift (PSI)", justify="right")
    grid.add_column("KS / JS", justify="right")
    grid.add_column("missing", justify="right")
    grid.add_column("status")
    rows = [*overall.features, *([overall.prediction] if overall.prediction else [])]
    for drift in rows:
        grid.add_row(*_drift_cells(drift))
    for metric in overall.live:
        grid.add_row(*_live_cells(metric))
    return grid


def _drift_cells(drift: FeatureDrift) -> list[str]:
    statistic = "-"
    if drift.statistic_value is not None:
        statistic = f"{drift.statistic} {drift.statistic_value:.3f}"
    return [
        escape(drift.feature),
        escape(drift.reference),
        escape(drift.current),
        "-" if drift.psi is None else f"{drift.psi:.3f}",
        statistic,
        f"{drift.missing_rate:.1%}",
        _status(drift.status, drift.threshold),
    ]


def _live_cells(metric: LiveMetric) -> list[str]:
    reference = "-" if metric.reference is None else f"{metric.reference:.3f} (test data)"
    value = "-" if metric.value is None else f"{metric.value:.3f}"
    threshold = metric.threshold if metric.status == ALERT else None
    return [
        escape(f"live {metric.name}"),
        reference,
        f"{value} ({metric.labelled:,} labelled)",
        "",
        "",
        "",
        _status(metric.status, threshold),
    ]


def _windows_table(title: str, windows: tuple[WindowReport, ...], *, by_version: bool) -> Table:
    metrics = list(dict.fromkeys(m.name for w in windows for m in w.live))
    grid = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    grid.add_column("version" if by_version else "window")
    grid.add_column("requests", justify="right")
    grid.add_column("labelled", justify="right")
    grid.add_column("largest drift", justify="right")
    grid.add_column("prediction", justify="right")
    for name in metrics:
        grid.add_column(name, justify="right")
    grid.add_column("status")
    for window in windows:
        drifted = max(
            (f for f in window.features if f.psi is not None),
            key=lambda f: f.psi or 0.0,
            default=None,
        )
        largest = "-" if drifted is None else f"{drifted.psi:.3f} {drifted.feature}"
        prediction = window.prediction
        cells = [
            str(window.reference_version) if by_version else _time(window.start),
            f"{window.requests:,.0f}",
            f"{window.labelled:,}",
            escape(largest),
            "-" if prediction is None or prediction.psi is None else f"{prediction.psi:.3f}",
        ]
        for name in metrics:
            metric = window.metric(name)
            cells.append("-" if metric is None or metric.value is None else f"{metric.value:.3f}")
        cells.append(_status(window.status, None))
        grid.add_row(*cells)
    return grid


def _status(status: str, threshold: str | None) -> str:
    text = status.upper() if status == ALERT else status
    if threshold:
        text += f" ({threshold})"
    style = _STYLE.get(status)
    return f"[{style}]{escape(text)}[/]" if style else escape(text)


def _time(moment: float) -> str:
    shown = datetime.fromtimestamp(moment, UTC)
    if shown.second == 0 and shown.microsecond == 0:
        return shown.strftime("%Y-%m-%d %H:%M")
    return shown.strftime("%Y-%m-%d %H:%M:%S")

"""A model's monitoring page per environment (``/models/{name}/monitoring/{environment}``):
drift of each input feature over time, the distribution of predictions against the reference,
live metrics against the version's test-time values, and which version was serving when.

Everything comes from ``Client.monitor`` over the chosen range (``since``, a duration before
now) cut into windows (``window``), from the version's reference profile, from the logged
predictions of the range (what the environment answered, shadows left out, as ``monitor``
judges them), and from the environment's promotion history. Nothing here writes.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from markupsafe import Markup
from starlette.responses import Response

from modelrail.entities import EnvironmentEvent
from modelrail.errors import InvalidInputError
from modelrail.monitoring.drift import as_numbers, category_counts
from modelrail.monitoring.logfiles import PREDICTIONS, read_log
from modelrail.monitoring.profiles import NUMERIC, ColumnProfile, bin_counts
from modelrail.monitoring.profiling import label_text
from modelrail.monitoring.report import MonitorReport, WindowReport
from modelrail.store.environments_repo import HOLDER_ACTIONS
from modelrail.tracking.tracker_columns import format_time
from modelrail.ui.charts import Series, colour, line_chart
from modelrail.ui.state import Page

DEFAULT_SINCE = "7d"
DEFAULT_WINDOW = "1d"
# A chart of more windows than this is unreadable, and each window is judged on its own.
MOST_WINDOWS = 200
# Features drawn in the drift chart (the most drifted); the table lists them all.
CHART_FEATURES = 8
_UNITS = {"m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_THRESHOLD_COLOUR = "#8a8f98"


@dataclass(frozen=True)
class Stay:
    """A stretch of time one version was what the environment held."""

    version: int
    start: float
    end: float | None  # None: it holds it still
    action: str
    actor: str


@dataclass(frozen=True)
class Share:
    """One value (or bin) of the predictions: its share in the reference and now."""

    label: str
    reference: float | None
    now: float | None


def monitoring_page(page: Page) -> Response:
    name = page.path_param("name")
    environment = page.path_param("environment")
    client = page.client
    client.policy.environment(environment)  # an unknown environment is a 404 page
    client.list_versions(name)  # an unknown model is a 404 page
    since_text = page.param("since") or DEFAULT_SINCE
    window_text = page.param("window") or DEFAULT_WINDOW
    span = _duration("since", since_text)
    window = _duration("window", window_text)
    if span / window > MOST_WINDOWS:
        raise InvalidInputError(
            f"window {window_text!r} cuts the last {since_text} into more than {MOST_WINDOWS} "
            "windows: choose a longer window or a shorter since"
        )
    now = time.time()
    start = now - span
    stays = serving_stays(client.history(name, environment), start)
    context: dict[str, Any] = {
        "title": f"Monitoring {name}@{environment}",
        "name": name,
        "environment": environment,
        "chain": client.policy.chain,
        "since": since_text,
        "window": window_text,
        "start": start,
        "end": now,
        "stays": stays,
    }
    # Through a team server too, the logs are this machine's (``[monitoring] root``).
    report = client.monitor(
        f"{name}@{environment}", since=start, until=now, window_seconds=window, now=now
    )
    root = client.monitoring_root
    profile = client.reference_profile(f"{name}:{report.version}")
    prediction_profile = profile.prediction if profile is not None else None
    shares, predicted = prediction_shares(
        _served(root, name, environment, start, now), prediction_profile
    )
    unit, unit_name = (86_400.0, "days") if window >= 86_400 else (3_600.0, "hours")
    x_label = f"{unit_name} since {format_time(start)}"
    charted = _charted_features(report)
    return page.render(
        "monitoring.html",
        report=report,
        overall=report.overall,
        windows=[w for w in report.windows if w.rows],
        charted=charted,
        drift_chart=drift_chart(report, charted, unit, x_label),
        live_charts=live_charts(report, unit, x_label),
        shares=shares,
        predicted=predicted,
        prediction_kind=prediction_profile.kind if prediction_profile is not None else None,
        holds=next((s.version for s in stays if s.end is None), None),
        **context,
    )


def _duration(param: str, text: str) -> float:
    found = _DURATION.match(text)
    if found is None or float(found[1]) <= 0:
        raise InvalidInputError(
            f"{param} must be a duration such as 30m, 12h, 7d or 2w, not {text!r}"
        )
    return float(found[1]) * _UNITS[found[2]]


def serving_stays(events: Sequence[EnvironmentEvent], since: float) -> list[Stay]:
    """Who held the environment when, from its history (oldest first): the stays that
    reach into ``[since, now)``."""
    stays: list[Stay] = []
    for event in events:
        if event.action not in HOLDER_ACTIONS:
            continue
        if stays and stays[-1].end is None:
            last = stays[-1]
            stays[-1] = Stay(last.version, last.start, event.created_at, last.action, last.actor)
        if event.to_version is not None:
            stays.append(Stay(event.to_version, event.created_at, None, event.action, event.actor))
    return [s for s in stays if s.end is None or s.end > since]


def _served(root: str, name: str, environment: str, since: float, until: float) -> pa.Table:
    """The logged predictions the environment answered in the range (shadows left out)."""
    columns = ["time", "environment", "source", "prediction", "prediction_value"]
    table = read_log(root, PREDICTIONS, name, since=since, until=until, columns=columns)
    if table is None or table.num_rows == 0:
        return pa.table({"prediction": pa.array([], pa.string())})
    here = pc.equal(table.column("environment").cast(pa.string()), environment)
    served = pc.fill_null(pc.not_equal(table.column("source").cast(pa.string()), "shadow"), True)
    return table.filter(pc.fill_null(pc.and_(here, served), False))


def prediction_shares(rows: pa.Table, profile: ColumnProfile | None) -> tuple[list[Share], int]:
    """Each predicted value's (or, for numbers, each reference bin's) share in the
    reference and in ``rows``, and how many predictions ``rows`` has."""
    count = rows.num_rows
    if profile is None:
        if count == 0:
            return [], 0
        found = pc.value_counts(label_text(rows.column("prediction").combine_chunks()))
        pairs = sorted(
            zip(found.field("values").to_pylist(), found.field("counts").to_pylist(), strict=True),
            key=lambda pair: -pair[1],
        )
        return [Share(str(value), None, n / count) for value, n in pairs[:10]], count
    if profile.kind == NUMERIC:
        return _numeric_shares(rows, profile), count
    known = list(profile.frequencies)
    now: list[float | None] = [None] * (len(known) + 1)
    if count:
        counts = category_counts(label_text(rows.column("prediction").combine_chunks()), known)
        present = int(counts.sum())
        now = [int(n) / present if present else 0.0 for n in counts]
    shares = [Share(v, profile.frequencies[v], now[i]) for i, v in enumerate(known[:10])]
    if profile.other or (now[-1] or 0.0) > 0 or len(known) > 10:
        rest_now = None if now[-1] is None else sum(x or 0.0 for x in now[10:])
        rest_reference = profile.other + sum(profile.frequencies[v] for v in known[10:])
        shares.append(Share("others", rest_reference, rest_now))
    return shares, count


def _numeric_shares(rows: pa.Table, profile: ColumnProfile) -> list[Share]:
    edges = profile.edges
    if len(edges) < 2:
        return []
    now: list[float | None] = [None] * (len(edges) - 1)
    if rows.num_rows:
        numbers = as_numbers(rows.column("prediction_value").combine_chunks())
        if not np.isfinite(numbers).any():  # a regressor whose numbers were logged as text
            numbers = as_numbers(rows.column("prediction").combine_chunks())
        counts = bin_counts(numbers, edges)
        total = int(counts.sum())
        now = [int(n) / total if total else 0.0 for n in counts]
    return [
        Share(f"{edges[i]:.4g} to {edges[i + 1]:.4g}", profile.proportions[i], now[i])
        for i in range(len(edges) - 1)
    ]


def _charted_features(report: MonitorReport) -> list[str]:
    """The features drawn: those with a PSI, the most drifted over the range first."""
    measured = [f for f in report.overall.features if f.psi is not None]
    measured.sort(key=lambda f: -(f.psi or 0.0))
    return [f.feature for f in measured[:CHART_FEATURES]]


def drift_chart(
    report: MonitorReport, features: list[str], unit: float, x_label: str
) -> Markup | None:
    """PSI per window of each charted feature, with the watch and alert thresholds drawn
    over the whole range (so the axis spans it, quiet stretches included)."""
    start = report.since
    windows = [w for w in report.windows if w.rows]
    if not features or not windows:
        return None
    series = []
    for index, feature in enumerate(features):
        points = []
        for window in windows:
            found = window.feature(feature)
            if found is not None and found.psi is not None:
                points.append((_x(window, start, unit), found.psi))
        series.append(Series(feature, points, colour(index)))
    ends = [0.0, _span(report, unit)]
    for label, value in (("watch", report.drift_watch), ("alert", report.drift_alert)):
        flat = [(x, value) for x in ends] if math.isfinite(value) else []
        series.append(Series(f"{label} ({value:g})", flat, _THRESHOLD_COLOUR))
    return line_chart(
        "drift per feature (PSI) per window",
        series,
        width=760,
        height=300,
        x_label=x_label,
        test_id="drift-chart",
    )


def live_charts(report: MonitorReport, unit: float, x_label: str) -> list[Markup]:
    """One chart per live metric that has a value in some window: its value per window
    and, flat over the whole range, the value the version's run logged on its test data."""
    start = report.since
    windows = [w for w in report.windows if w.labelled]
    charts = []
    for metric in report.overall.live:
        points = []
        for window in windows:
            found = window.metric(metric.name)
            if found is not None and found.value is not None:
                points.append((_x(window, start, unit), found.value))
        if not points:
            continue
        series = [Series(f"live {metric.name}", points, colour(0))]
        if metric.reference is not None:
            flat = [(0.0, metric.reference), (_span(report, unit), metric.reference)]
            series.append(Series(f"test data ({metric.reference:.4g})", flat, colour(1)))
        charts.append(
            line_chart(f"live {metric.name}", series, x_label=x_label, test_id="live-metric-chart")
        )
    return charts


def _span(report: MonitorReport, unit: float) -> float:
    return round((report.until - report.since) / unit, 3)


def _x(window: WindowReport, start: float, unit: float) -> float:
    """Where a window sits on a chart: its middle, in days or hours since the range began."""
    return round(((window.start + window.end) / 2 - start) / unit, 3)

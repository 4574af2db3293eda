"""The latest monitoring check of each model and environment as Prometheus gauges.

``render_latest`` reads the stored checks (``checkfiles``) and writes them in Prometheus'
text format; the prediction server appends it to its ``/metrics``. Nothing is computed at
scrape time: the scheduler (or ``modelrail monitor --notify``) makes the checks.

Every gauge has the labels ``model`` and ``environment``:

| gauge | extra labels | value |
| --- | --- | --- |
| ``modelrail_monitor_alert`` | ``version`` | 1 when the check found an alert, else 0 |
| ``modelrail_monitor_watch`` | ``version`` | 1 when its worst status is watch, else 0 |
| ``modelrail_monitor_drift_psi`` | ``feature`` | population stability index of an input |
| ``modelrail_monitor_drift_statistic`` | ``feature``, ``statistic`` | KS statistic or JS distance |
| ``modelrail_monitor_prediction_psi`` | | PSI of the predictions |
| ``modelrail_monitor_live_metric`` | ``metric`` | the metric on labelled predictions |
| ``modelrail_monitor_live_metric_reference`` | ``metric`` | the version's logged value |
| ``modelrail_monitor_labelled`` | | labelled predictions in the checked range |
| ``modelrail_monitor_rows`` | | logged rows in the checked range |
| ``modelrail_monitor_requests`` | | requests estimated from the logged ones |
| ``modelrail_monitor_check_timestamp_seconds`` | | when the check was made |
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from modelrail.errors import ModelrailError
from modelrail.monitoring.checkfiles import latest_checks
from modelrail.monitoring.report import ALERT, WATCH, MonitorReport

log = logging.getLogger("modelrail.serving")

_BASE = ["model", "environment"]
# key: (name, help, labels beyond _BASE)
_GAUGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "alert": (
        "modelrail_monitor_alert",
        "1 when the latest monitoring check found an alert.",
        ("version",),
    ),
    "watch": (
        "modelrail_monitor_watch",
        "1 when the latest monitoring check's worst status is watch.",
        ("version",),
    ),
    "psi": (
        "modelrail_monitor_drift_psi",
        "Population stability index of an input feature against the reference profile.",
        ("feature",),
    ),
    "statistic": (
        "modelrail_monitor_drift_statistic",
        "Kolmogorov-Smirnov statistic (numeric) or Jensen-Shannon distance (categorical).",
        ("feature", "statistic"),
    ),
    "prediction": (
        "modelrail_monitor_prediction_psi",
        "Population stability index of the predictions against the reference profile.",
        (),
    ),
    "live": (
        "modelrail_monitor_live_metric",
        "A model metric computed on labelled logged predictions.",
        ("metric",),
    ),
    "reference": (
        "modelrail_monitor_live_metric_reference",
        "The metric's value logged by the reference version's run (test data).",
        ("metric",),
    ),
    "labelled": (
        "modelrail_monitor_labelled",
        "Logged predictions with a label in the checked range.",
        (),
    ),
    "rows": ("modelrail_monitor_rows", "Logged prediction rows in the checked range.", ()),
    "requests": (
        "modelrail_monitor_requests",
        "Requests in the checked range, estimated from the logged ones and their rate.",
        (),
    ),
    "time": (
        "modelrail_monitor_check_timestamp_seconds",
        "When the latest monitoring check was made (Unix time).",
        (),
    ),
}


def render_latest(root: str | Path, models: Iterable[str] | None = None) -> bytes:
    """The latest stored check of every (model, environment) under the monitoring folder
    ``root`` (of ``models`` only, when given) as Prometheus text; empty when none."""
    reports = latest_checks(root, models)
    if not reports:
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ChecksCollector(reports))
    return generate_latest(registry)


class _ChecksCollector:
    def __init__(self, reports: list[MonitorReport]) -> None:
        self.reports = reports

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        gauges = {
            key: GaugeMetricFamily(name, text, labels=[*_BASE, *extra])
            for key, (name, text, extra) in _GAUGES.items()
        }
        for report in self.reports:
            _add(gauges, report)
        yield from gauges.values()


def _add(gauges: dict[str, GaugeMetricFamily], report: MonitorReport) -> None:
    base = [report.model, report.environment or ""]
    overall = report.overall
    status = report.status
    version = [*base, str(report.version)]
    gauges["alert"].add_metric(version, 1.0 if status == ALERT else 0.0)
    gauges["watch"].add_metric(version, 1.0 if status == WATCH else 0.0)
    for drift in overall.features:
        if drift.psi is not None:
            gauges["psi"].add_metric([*base, drift.feature], drift.psi)
        if drift.statistic is not None and drift.statistic_value is not None:
            labels = [*base, drift.feature, drift.statistic]
            gauges["statistic"].add_metric(labels, drift.statistic_value)
    if overall.prediction is not None and overall.prediction.psi is not None:
        gauges["prediction"].add_metric(base, overall.prediction.psi)
    for metric in overall.live:
        if metric.value is not None:
            gauges["live"].add_metric([*base, metric.name], metric.value)
        if metric.reference is not None:
            gauges["reference"].add_metric([*base, metric.name], metric.reference)
    gauges["labelled"].add_metric(base, float(overall.labelled))
    gauges["rows"].add_metric(base, float(overall.rows))
    gauges["requests"].add_metric(base, overall.requests)
    gauges["time"].add_metric(base, report.checked_at)


class LatestChecks:
    """``render_latest`` for a server's ``/metrics``, read at most once per ``ttl_s``: a
    scrape every few seconds must not list an object store each time, and a check that
    cannot be read leaves the gauges out (logged), never fails the scrape."""

    def __init__(
        self,
        root: str | Path,
        models: Callable[[], Iterable[str]],
        *,
        ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.models = models
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._text = b""
        self._read_at: float | None = None

    def __call__(self) -> bytes:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl_s:
                self._read_at = now
                try:
                    self._text = render_latest(self.root, list(self.models()))
                except ModelrailError as exc:
                    log.warning("modelrail serve: monitoring gauges left out: %s", exc.message)
                    self._text = b""
            return self._text

"""Prometheus metrics of the prediction server: requests, errors and latency per model
and version, shadow agreement, and what the prediction log wrote and dropped.

Each request is counted through a ``ModelCounts`` bound to its model and version once. In one
process (the default) these are plain numbers that the event loop, the only thread that
answers requests and scrapes, adds to and a collector reads at scrape time: no lock and no
label lookup per request. With several worker processes, prometheus_client's multiprocess
mode (one file per process in ``PROMETHEUS_MULTIPROC_DIR``) lets any worker answer a scrape
for all, so there each request goes through prometheus_client's labelled children.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from modelrail.monitoring.prediction_log import LogCounts, TallyCounts

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# The latency buckets' "le" labels, written as prometheus_client writes them.
_BOUNDS = [*(floatToGoString(b) for b in LATENCY_BUCKETS), "+Inf"]  # type: ignore[no-untyped-call]
_REQUESTS = (
    "modelrail_requests_total",
    "Prediction requests answered, by model, version and HTTP status.",
)
_ROWS = ("modelrail_predicted_rows_total", "Rows predicted.")
_LATENCY = (
    "modelrail_request_latency_seconds",
    "Time from request received to response ready, by model and version.",
)
_LOG_WRITTEN = (
    "modelrail_prediction_log_written_total",
    "Requests whose predictions were written to the prediction log, by model.",
)
_LOG_DROPPED = (
    "modelrail_prediction_log_dropped_total",
    "Requests sampled for the prediction log but not written, by model and reason "
    "(queue_full: the writer was behind; write_error: their file could not be written).",
)
_LOG_FAILURES = (
    "modelrail_prediction_log_write_errors_total",
    "Prediction log files that could not be written (disk full, no permission), by model.",
)


class ModelCounts(Protocol):
    """The request metrics of one model version."""

    def answered(self, rows: int, seconds: float) -> None: ...

    def failed(self, status: int, seconds: float) -> None: ...


class _LocalCounts:
    """One process's counts of one model version, read by ``_LocalCollector`` at scrape time."""

    __slots__ = ("buckets", "ok", "rows", "statuses", "total_seconds")

    def __init__(self) -> None:
        self.ok = 0
        self.rows = 0
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: above every bound
        self.total_seconds = 0.0

    def answered(self, rows: int, seconds: float) -> None:
        self.ok += 1
        self.rows += rows
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total_seconds += seconds

    def failed(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total_seconds += seconds


class _LocalCollector:
    """Requests, rows and latency of every model version, from the ``_LocalCounts``."""

    def __init__(self, counts: dict[tuple[str, int], Any]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        labels = ["model", "version"]
        requests = CounterMetricFamily(*_REQUESTS, labels=[*labels, "status"])
        rows = CounterMetricFamily(*_ROWS, labels=labels)
        latency = HistogramMetricFamily(*_LATENCY, labels=labels)
        for (model, version), counts in list(self.counts.items()):
            v = str(version)
            if counts.ok:
                requests.add_metric([model, v, "200"], counts.ok)
            for status, count in sorted(counts.statuses.items()):
                requests.add_metric([model, v, str(status)], count)
            rows.add_metric([model, v], counts.rows)
            cumulative, running = [], 0
            for bound, count in zip(_BOUNDS, counts.buckets, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            latency.add_metric([model, v], cumulative, counts.total_seconds)
        yield from (requests, rows, latency)

    def describe(self) -> Iterator[Metric]:  # registered without calling collect() early
        return iter(())


class _LogCollector:
    """The prediction log's counts of this process (``TallyCounts``), at scrape time."""

    def __init__(self, counts: TallyCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        written = CounterMetricFamily(*_LOG_WRITTEN, labels=["model"])
        dropped = CounterMetricFamily(*_LOG_DROPPED, labels=["model", "reason"])
        failures = CounterMetricFamily(*_LOG_FAILURES, labels=["model"])
        for model, count in sorted(self.counts.written_by.items()):
            written.add_metric([model], count)
        for (model, reason), count in sorted(self.counts.dropped_by.items()):
            dropped.add_metric([model, reason], count)
        for model, count in sorted(self.counts.failures_by.items()):
            failures.add_metric([model], count)
        yield from (written, dropped, failures)

    def describe(self) -> Iterator[Metric]:
        return iter(())


class _SharedLogCounts:
    """The prediction log's counts in prometheus_client's multiprocess files (every worker
    process adds to them; any one answers a scrape with the sum)."""

    def __init__(self) -> None:
        self._written = Counter(*_LOG_WRITTEN, ("model",), registry=None)
        self._dropped = Counter(*_LOG_DROPPED, ("model", "reason"), registry=None)
        self._failures = Counter(*_LOG_FAILURES, ("model",), registry=None)

    def written(self, model: str, requests: int) -> None:
        self._written.labels(model).inc(requests)

    def dropped(self, model: str, reason: str, requests: int) -> None:
        self._dropped.labels(model, reason).inc(requests)

    def write_failed(self, model: str) -> None:
        self._failures.labels(model).inc()


class _SharedCounts:
    """One model version's counts in prometheus_client's multiprocess files."""

    __slots__ = ("_latency", "_metrics", "_ok", "_rows", "_version", "model")

    def __init__(self, metrics: ServerMetrics, model: str, version: int) -> None:
        self._metrics = metrics
        self.model = model
        self._version = str(version)
        self._ok = metrics.requests.labels(model, self._version, "200")
        self._rows = metrics.rows.labels(model, self._version)
        self._latency = metrics.latency.labels(model, self._version)

    def answered(self, rows: int, seconds: float) -> None:
        self._ok.inc()
        self._rows.inc(rows)
        self._latency.observe(seconds)

    def failed(self, status: int, seconds: float) -> None:
        self._metrics.requests.labels(self.model, self._version, str(status)).inc()
        self._latency.observe(seconds)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.registry = CollectorRegistry()
        registry = None if self.multiprocess else self.registry
        labels = ("model", "version")
        self._counts: dict[tuple[str, int], Any] = {}
        self._log_counts: LogCounts | None = None
        if self.multiprocess:
            self.requests = Counter(*_REQUESTS, (*labels, "status"), registry=None)
            self.rows = Counter(*_ROWS, labels, registry=None)
            self.latency = Histogram(*_LATENCY, labels, buckets=LATENCY_BUCKETS, registry=None)
        else:
            self.registry.register(_LocalCollector(self._counts))
        self.errors = Counter(
            "modelrail_request_errors_total",
            "Requests refused (4xx) or failed, by model and reason.",
            ("model", "reason"),
            registry=registry,
        )
        self.loaded = Gauge(
            "modelrail_model_loaded_version",
            "The version each model is answered with.",
            ("model", "environment"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self.shadow_requests = Counter(
            "modelrail_shadow_requests_total",
            "Requests also scored by the shadow environment's version.",
            ("model", "version", "shadow_version"),
            registry=registry,
        )
        self.shadow_agreeing = Counter(
            "modelrail_shadow_agreeing_rows_total",
            "Rows where the shadow version predicted the same as the live one.",
            ("model", "version", "shadow_version"),
            registry=registry,
        )
        self.shadow_rows = Counter(
            "modelrail_shadow_rows_total",
            "Rows scored by the shadow version.",
            ("model", "version", "shadow_version"),
            registry=registry,
        )
        self.shadow_latency = Histogram(
            "modelrail_shadow_latency_seconds",
            "Scoring time of the shadow version (off the request path).",
            ("model", "shadow_version"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def for_model(self, model: str, version: int) -> ModelCounts:
        """The counts of ``model`` ``version``, to keep and add to on each request."""
        key = (model, version)
        counts: ModelCounts | None = self._counts.get(key)
        if counts is None:
            counts = _SharedCounts(self, model, version) if self.multiprocess else _LocalCounts()
            self._counts[key] = counts
        return counts

    def observe(self, model: str, version: int, status: int, rows: int, seconds: float) -> None:
        counts = self.for_model(model, version)
        if status == 200:
            counts.answered(rows, seconds)
        else:
            counts.failed(status, seconds)

    def prediction_log_counts(self) -> LogCounts:
        """Where the prediction log counts what it wrote and dropped (made on first use: a
        server that logs nothing shows none of these metrics)."""
        if self._log_counts is None:
            if self.multiprocess:
                self._log_counts = _SharedLogCounts()
            else:
                tally = TallyCounts()
                self.registry.register(_LogCollector(tally))
                self._log_counts = tally
        return self._log_counts

    def refused(self, model: str, reason: str) -> None:
        self.errors.labels(model, reason).inc()

    def render(self) -> bytes:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

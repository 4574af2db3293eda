"""Prometheus metrics of the prediction server: requests, errors and latency per model
and version, and shadow agreement.

With several worker processes, prometheus_client's multiprocess mode (one file
per process in ``PROMETHEUS_MULTIPROC_DIR``) lets any worker answer a scrape for all.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class ServerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.registry = CollectorRegistry()
        registry = None if self.multiprocess else self.registry
        labels = ("model", "version")
        self.requests = Counter(
            "modelrail_requests_total",
            "Prediction requests answered, by model, version and HTTP status.",
            (*labels, "status"),
            registry=registry,
        )
        self.rows = Counter(
            "modelrail_predicted_rows_total", "Rows predicted.", labels, registry=registry
        )
        self.latency = Histogram(
            "modelrail_request_latency_seconds",
            "Time from request received to response ready, by model and version.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
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
        self._children: dict[tuple[str, int], Any] = {}

    def observe(self, model: str, version: int, status: int, rows: int, seconds: float) -> None:
        key = (model, version)
        children = self._children.get(key)
        if children is None:
            v = str(version)
            children = (
                self.requests.labels(model, v, "200"),
                self.rows.labels(model, v),
                self.latency.labels(model, v),
            )
            self._children[key] = children
        if status == 200:
            children[0].inc()
            children[1].inc(rows)
        else:
            self.requests.labels(model, str(version), str(status)).inc()
        children[2].observe(seconds)

    def refused(self, model: str, reason: str) -> None:
        self.errors.labels(model, reason).inc()

    def render(self) -> bytes:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

"""Shadow traffic: every live request is also scored by the version another
environment (say staging) holds, on a background thread after the response has
gone out. Agreement and latencies go to /metrics and, every few seconds, to the
store, where ``modelrail shadow report`` reads them.

A full queue drops shadow work rather than slowing live traffic. When the live request
was logged (``serve --log-predictions``), the shadow's answer is logged too, under the same
request id, with source "shadow" and the shadow environment and version.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from modelrail.client import Client
from modelrail.errors import ModelrailError
from modelrail.monitoring.prediction_rows import Origin
from modelrail.serving.metrics import ServerMetrics
from modelrail.serving.models import ModelSet, ServedModel, Watcher
from modelrail.store.shadow_repo import ShadowTotals

if TYPE_CHECKING:
    from modelrail.serving.options import ServeOptions
    from modelrail.serving.prediction_logging import LogPlan

log = logging.getLogger("modelrail.serving")
FLUSH_EVERY_S = 2.0
QUEUE_SIZE = 1000


class ShadowScorer:
    def __init__(
        self,
        client: Client,
        environment: str,
        metrics: ServerMetrics,
        load: Any,
        options: ServeOptions,
        log_plan: LogPlan | None = None,
    ) -> None:
        client.policy.environment(environment)
        self.log_plan = log_plan
        self._log = log_plan.channel() if log_plan is not None else None
        # The origin of each shadow version's logged answers, by the live origin.
        self._origins: dict[tuple[Origin, ServedModel], Origin] = {}
        self.environment = environment
        self.live_environment = options.environment or "-"
        self.metrics = metrics
        self.models = ModelSet()
        self.repo = client.shadow_records

        def holdings() -> dict[str, int]:
            return {h.model: h.version for h in client.board() if h.environment == environment}

        self.watcher = Watcher(
            self.models,
            environment,
            holdings,
            load,
            interval_s=options.poll_interval_s,
            wait_for_change=None if isinstance(client, Client) else client.wait_for_change,
        )
        self.watcher.refresh()
        self.dropped = 0
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._totals: dict[tuple[str, int, int], ShadowTotals] = {}
        self._thread = threading.Thread(target=self._work, name="modelrail-shadow", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=10)
        self._flush()

    def submit(
        self,
        served: ServedModel,
        matrix: Any,
        predictions: Any,
        live_seconds: float,
        logged: tuple[Origin, bytes, float] | None = None,
    ) -> None:
        """On the request path: only a queue put. ``logged``: the live request's log origin,
        id and arrival, when it was logged."""
        shadow = self.models.current.get(served.name)
        if shadow is None:
            return
        self.start()
        try:
            self._queue.put_nowait((served, shadow, matrix, predictions, live_seconds, logged))
        except queue.Full:
            self.dropped += 1

    def _work(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                item = ()
            if item is None:
                return
            if item:
                self._score(*item)
            if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                self._flush()
                last_flush = time.monotonic()

    def _score(
        self,
        served: ServedModel,
        shadow: ServedModel,
        matrix: Any,
        live: Any,
        live_seconds: float,
        logged: tuple[Origin, bytes, float] | None,
    ) -> None:
        started = time.perf_counter()
        try:
            scored = shadow.scoring.score_input(matrix)
        except Exception as exc:  # a candidate failing must never touch live traffic
            log.warning(
                "modelrail serve: shadow %s %s failed: %s", shadow.name, shadow.version, exc
            )
            return
        predictions = scored.predictions
        seconds = time.perf_counter() - started
        rows = len(matrix)
        if logged is not None and self._log is not None and self.log_plan is not None:
            live_origin, request_id, arrived = logged
            pair = (live_origin, shadow)
            origin = self._origins.get(pair)
            if origin is None:
                if len(self._origins) > 64:  # versions long replaced: forget them
                    self._origins.clear()
                origin = self._origins[pair] = self.log_plan.shadow_origin(live_origin, shadow)
            record = (origin, request_id, arrived, matrix, predictions, scored.probabilities)
            self._log.offer((*record, seconds, rows))
        agreeing = int(np.count_nonzero(np.asarray(predictions) == np.asarray(live)))
        labels = (served.name, str(served.version), str(shadow.version))
        self.metrics.shadow_requests.labels(*labels).inc()
        self.metrics.shadow_rows.labels(*labels).inc(rows)
        self.metrics.shadow_agreeing.labels(*labels).inc(agreeing)
        self.metrics.shadow_latency.labels(served.name, str(shadow.version)).observe(seconds)
        key = (served.name, served.version, shadow.version)
        now = time.time()
        batch = ShadowTotals(
            model=served.name,
            live_environment=self.live_environment,
            live_version=served.version,
            shadow_environment=self.environment,
            shadow_version=shadow.version,
            requests=1,
            rows=rows,
            agreeing_rows=agreeing,
            live_seconds=live_seconds,
            shadow_seconds=seconds,
            first_at=now,
            last_at=now,
        )
        known = self._totals.get(key)
        self._totals[key] = batch if known is None else _merged(known, batch)

    def _flush(self) -> None:
        if not self._totals:
            return
        batches, self._totals = list(self._totals.values()), {}
        try:
            self.repo.add(batches)
        except ModelrailError as exc:
            log.warning("modelrail serve: could not save shadow results: %s", exc)


def _merged(a: ShadowTotals, b: ShadowTotals) -> ShadowTotals:
    return replace(
        a,
        requests=a.requests + b.requests,
        rows=a.rows + b.rows,
        agreeing_rows=a.agreeing_rows + b.agreeing_rows,
        live_seconds=a.live_seconds + b.live_seconds,
        shadow_seconds=a.shadow_seconds + b.shadow_seconds,
        last_at=b.last_at,
    )

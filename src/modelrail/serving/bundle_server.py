"""Serving a bundle (``modelrail serve --bundle``, as container images do): fixed versions
read and verified from the bundle's folder, no store; prediction logs and labels go where
``MODELRAIL_MONITORING_ROOT`` says (a mounted volume or a bucket)."""

from __future__ import annotations

import logging
import time
from typing import Any

from modelrail.errors import ModelrailError, ServerStartError
from modelrail.monitoring.feedback_api import FeedbackWriter
from modelrail.scoring.forms.record import ONE_ROW
from modelrail.scoring.predictor import scoring_model_for
from modelrail.serving.app import PredictionApp
from modelrail.serving.inputs import Limits
from modelrail.serving.metrics import ServerMetrics
from modelrail.serving.models import ModelSet, ServedModel
from modelrail.serving.options import ServeOptions
from modelrail.serving.prediction_logging import plan_log
from modelrail.serving.server import (
    Announce,
    announce_address,
    bind,
    each,
    run_uvicorn,
    start_item,
    stop_item,
)

__all__ = ["build_bundle_app", "run_bundle"]

log = logging.getLogger("modelrail.serving")


def run_bundle(options: ServeOptions, announce: Announce | None = None) -> None:
    app = build_bundle_app(options)
    sock = bind(options.host, options.port)
    announce_address(announce, sock)
    run_uvicorn(app, sock)


def build_bundle_app(options: ServeOptions) -> PredictionApp:
    """The app for a serving bundle: fixed versions, verified, no store."""
    from pathlib import Path

    from modelrail.bundle import read_bundle

    assert options.bundle is not None
    artifacts, bundled = read_bundle(Path(options.bundle))
    models = ModelSet()
    metrics = ServerMetrics()
    for item in bundled:
        try:
            # Its verified one-row form where it has one: no training library to load.
            scoring = scoring_model_for(artifacts, item.version, ONE_ROW)
            scoring.prefetch_library()
        except ModelrailError as exc:
            raise ServerStartError(f"cannot serve {item.version.reference}: {exc.message}") from exc
        models.swap(ServedModel(item.version.model, item.environment, scoring, time.time()))
        metrics.loaded.labels(item.version.model, item.environment or "").set(item.version.version)
    models.expected = frozenset(models.current)
    if not models.current:
        raise ServerStartError(f"bundle {options.bundle} holds no model")
    environments = {item.environment for item in bundled}
    log_plan, feedback = _bundle_logging(options, bundled, metrics)
    starters = [] if log_plan is None else [log_plan.log.start]
    stoppers = [] if log_plan is None else [log_plan.log.stop]
    if feedback is not None:
        stoppers.append(feedback.stop)
    return PredictionApp(
        models,
        environment=environments.pop() if len(environments) == 1 else None,
        metrics=metrics,
        limits=Limits(max_rows=options.max_rows, max_body_bytes=options.max_body_bytes),
        on_startup=lambda: each(starters, start_item),
        on_shutdown=lambda: each(stoppers, stop_item),
        log_plan=log_plan,
        feedback=feedback,
    )


def _bundle_logging(
    options: ServeOptions, bundled: list[Any], metrics: ServerMetrics
) -> tuple[Any, FeedbackWriter | None]:
    """A bundle's server logs into ``options.monitoring_root`` at its ``log_predictions``
    rate, else at the rate its environments' policies had when the bundle was written."""
    policies = {item.environment: item.monitoring for item in bundled if item.monitoring}
    root = options.monitoring_root
    if root is None:
        if options.log_predictions:
            raise ServerStartError(
                "{log_predictions} with a bundle needs a folder or bucket for the log: "
                "set MODELRAIL_MONITORING_ROOT (a mounted volume, or s3://bucket/prefix)",
                params=("log_predictions",),
            )
        if options.log_predictions is None and any(
            p.log_predictions > 0 for p in policies.values()
        ):
            log.warning(
                "modelrail serve: the bundle's environment logs predictions, but "
                "MODELRAIL_MONITORING_ROOT names no folder or bucket for them: not logging"
            )
        return None, None
    return plan_log(root, policies, options, metrics), FeedbackWriter(root)

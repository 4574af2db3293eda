"""The prediction server as a plain ASGI application.

No framework sits on the predict path: a request is routed by a dict lookup,
its body parsed by orjson into a float64 matrix, scored by the model's fastest
verified predictor and answered with orjson. Every response names the model and
version that produced it, in the body and in ``x-model-*`` headers, and carries the
request's id in ``x-request-id`` (see ``request_ids``).

A request sampled for the prediction log costs one append of references the handler
already holds to the log's queue, after the answer is sent (see
``monitoring.prediction_log``); with logging off, one test of a number.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from time import perf_counter
from typing import Any

import orjson

from modelrail.errors import InvalidRequestError
from modelrail.monitoring.feedback_api import FeedbackWriter, labels_from_json
from modelrail.monitoring.prediction_rows import Origin
from modelrail.serving.answers import Answering
from modelrail.serving.auth import TokenGuard
from modelrail.serving.docs import docs_page, openapi_spec
from modelrail.serving.http_io import (
    JSON,
    ClientGone,
    Receive,
    Scope,
    Send,
    error,
    is_json,
    other_content,
    read_body,
    respond,
)
from modelrail.serving.inputs import Limits, matrix_from_json, parse_json
from modelrail.serving.metrics import ServerMetrics
from modelrail.serving.models import ModelSet, ServedModel
from modelrail.serving.prediction_logging import LogPlan
from modelrail.serving.request_ids import HEADER, RequestIds, valid_request_id

log = logging.getLogger("modelrail.serving")

# Called after a live answer is sent: the served version, its input, its predictions, the
# model's seconds, and (origin, request id, arrival) when the request was logged.
ShadowHook = Callable[[ServedModel, Any, Any, float, "tuple[Origin, bytes, float] | None"], None]

_CHALLENGE = (b"www-authenticate", b'Bearer realm="modelrail"')
_PREDICT_PREFIX = "/v1/models/"
_PREDICT_SUFFIX = "/predict"
_FEEDBACK = "/v1/feedback"


class PredictionApp:
    def __init__(
        self,
        models: ModelSet,
        *,
        environment: str | None,
        metrics: ServerMetrics,
        limits: Limits | None = None,
        shadow: ShadowHook | None = None,
        on_startup: Callable[[], None] | None = None,
        on_shutdown: Callable[[], None] | None = None,
        guard: TokenGuard | None = None,
        guard_metrics: bool = False,
        log_plan: LogPlan | None = None,
        feedback: FeedbackWriter | None = None,
        more_metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.models = models
        self.more_metrics = more_metrics
        self.guard = guard
        # Open to anyone: health checks, and /metrics unless it is guarded too.
        self._open = frozenset({"/health", "/ready"} | (set() if guard_metrics else {"/metrics"}))
        self.environment = environment
        self.metrics = metrics
        self.limits = limits or Limits()
        self.shadow = shadow
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.log_plan = log_plan
        self.feedback = feedback
        self._log = log_plan.channel() if log_plan is not None else None
        self._random = random.Random().random
        self._ids = RequestIds()
        self._answering: dict[str, Answering] = {}
        self._get_routes: dict[str, Callable[[], tuple[int, bytes, bytes]]] = {
            "/health": self._health,
            "/ready": self._ready,
            "/v1/models": self._list_models,
            "/metrics": self._metrics,
            "/openapi.json": self._openapi,
            "/docs": self._docs,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # -- routing -----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        # One pass over the headers for all the app reads of them.
        content_type, length, given = b"", None, None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value
            elif key == b"content-length":
                length = value
            elif key == HEADER:
                given = value
        if given is None:
            request_id = self._ids.new()
        elif valid_request_id(given):
            request_id = given
        else:
            shown = given[:40].decode("latin-1")
            await error(
                send,
                400,
                f"x-request-id {shown!r} is not a usable id: 1 to 128 letters, digits or "
                "- _ . : / + = @ ~ (or send none and the server makes one)",
                "x-request-id",
                ((HEADER, self._ids.new()),),
            )
            return
        named = (HEADER, request_id)
        if self.guard is not None and path not in self._open:
            refusal = await self.guard.refusal(scope["headers"])
            if refusal is not None:
                headers = (_CHALLENGE, named)
                await error(send, refusal.status, refusal.message, "Authorization", headers)
                return
        if method == "POST":
            if path.startswith(_PREDICT_PREFIX) and path.endswith(_PREDICT_SUFFIX):
                name = path[len(_PREDICT_PREFIX) : -len(_PREDICT_SUFFIX)]
                await self._predict(receive, send, name, False, request_id, content_type, length)
                return
            if path == "/invocations":
                await self._predict(receive, send, None, True, request_id, content_type, length)
                return
            if path == _FEEDBACK:
                await self._feedback(scope, receive, send, named, content_type, length)
                return
        elif method in ("GET", "HEAD"):
            route = self._get_routes.get(path)
            if route is not None:
                status, media, body = route()
                await respond(send, status, body, [(b"content-type", media), named])
                return
        known = (
            path in self._get_routes
            or path in ("/invocations", _FEEDBACK)
            or (path.startswith(_PREDICT_PREFIX) and path.endswith(_PREDICT_SUFFIX))
        )
        if known:
            await error(send, 405, f"method {method} is not allowed on {path}", "method", (named,))
        else:
            await error(send, 404, f"no route {path}", "path", (named,))

    # -- predictions ----------------------------------------------------------------------------

    async def _predict(
        self,
        receive: Receive,
        send: Send,
        name: str | None,
        mlflow: bool,
        request_id: bytes,
        content_type: bytes,
        length: bytes | None,
    ) -> None:
        started = perf_counter()
        served = self._choose(name)
        if isinstance(served, str):
            await error(send, 404, served, "model", ((HEADER, request_id),))
            return
        answering = self._answering.get(served.name)
        if answering is None or answering.served is not served:  # first use, or a new version
            answering = Answering.of(served, self.metrics, self.log_plan)
            self._answering[served.name] = answering
        try:
            body = await read_body(receive, self.limits, length)
            spec = served.input_spec
            if content_type == b"application/json":
                matrix = matrix_from_json(body, spec, self.limits, mlflow=mlflow)
            else:
                matrix = other_content(content_type, body, spec, self.limits, mlflow)
            scoring_started = perf_counter()
            scored = served.scoring.score_input(matrix)
            scoring_seconds = perf_counter() - scoring_started
            payload_out = answering.answer(scored)
        except InvalidRequestError as exc:
            self.metrics.refused(served.name, exc.field or "body")
            answering.counts.failed(exc.http_status, perf_counter() - started)
            headers = (*answering.model_headers, (HEADER, request_id))
            await error(send, exc.http_status, exc.message, exc.field, headers)
            return
        except ClientGone:
            return
        except Exception as exc:  # a valid-looking input the model itself cannot score
            log.warning(
                "modelrail serve: %s %s could not score a request: %s",
                served.name,
                served.version,
                exc,
            )
            self.metrics.refused(served.name, "model")
            await error(
                send,
                422,
                f"the model could not score this input: {type(exc).__name__}: {exc}",
                "inputs",
                (*answering.model_headers, (HEADER, request_id)),
            )
            return
        rows = len(matrix)
        # Counted before it is sent: a client holding its answer finds it in /metrics.
        answering.counts.answered(rows, perf_counter() - started)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    *answering.headers,
                    (HEADER, request_id),
                    (b"content-length", b"%d" % len(payload_out)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload_out})
        rate = answering.log_rate
        if rate and (rate >= 1.0 or self._random() < rate):
            # (a rate above 0 means the app has a channel and the version an origin)
            self._log.add(  # type: ignore[union-attr]
                answering.origin,  # type: ignore[arg-type]
                request_id,
                started,
                matrix,
                scored.predictions,
                scored.probabilities,
                scoring_seconds,
                rows,
            )
            if self.shadow is not None:
                logged = (answering.origin, request_id, started)
                self.shadow(served, matrix, scored.predictions, scoring_seconds, logged)  # type: ignore[arg-type]
        elif self.shadow is not None:
            self.shadow(served, matrix, scored.predictions, scoring_seconds, None)

    # -- labels ------------------------------------------------------------------------------

    async def _feedback(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        named: tuple[bytes, bytes],
        content_type: bytes,
        length: bytes | None,
    ) -> None:
        if self.feedback is None:
            message = "this server keeps no labels (it serves a bundle, without a project)"
            await error(send, 404, message, "path", (named,))
            return
        try:
            if not is_json(content_type):
                raise InvalidRequestError(
                    "send the labels as application/json", field="content-type", status=415
                )
            payload = parse_json(await read_body(receive, self.limits, length))
            who = self.guard.user_name(scope["headers"]) if self.guard is not None else None
            model, table = labels_from_json(payload, loaded_by=who or "api", now=time.time())
        except InvalidRequestError as exc:
            await error(send, exc.http_status, exc.message, exc.field, (named,))
            return
        except ClientGone:
            return
        if model not in self.models.current:
            served = ", ".join(sorted(self.models.current)) or "none"
            message = f"no model {model!r} is served here (models: {served})"
            await error(send, 404, message, "model", (named,))
            return
        try:
            stored = await asyncio.wrap_future(self.feedback.submit(model, table))
        except Exception as exc:  # disk full, no permission: the caller may send them again
            message = f"the labels could not be stored: {type(exc).__name__}: {exc}"
            await error(send, 503, message, None, (named,))
            return
        body = orjson.dumps({"model": model, "stored": stored})
        await respond(send, 200, body, [JSON, named])

    def _choose(self, name: str | None) -> ServedModel | str:
        current = self.models.current
        if name is None:
            if len(current) == 1:
                return next(iter(current.values()))
            if not current:
                return "no model is loaded yet"
            return (
                "this server serves several models; use /v1/models/NAME/predict "
                f"(models: {', '.join(sorted(current))})"
            )
        served = current.get(name)
        if served is None:
            return (
                f"no model {name!r} is served here (models: {', '.join(sorted(current)) or 'none'})"
            )
        return served

    # -- other endpoints -----------------------------------------------------------------------

    def _health(self) -> tuple[int, bytes, bytes]:
        return 200, b"application/json", b'{"status":"alive"}'

    def _ready(self) -> tuple[int, bytes, bytes]:
        ready = self.models.ready
        document = {
            "ready": ready,
            "environment": self.environment,
            "models": {
                name: {"version": m.version, "predictor": m.scoring.predictor_kind}
                for name, m in self.models.current.items()
            },
            "waiting_for": sorted(self.models.expected - set(self.models.current)),
            "failures": dict(self.models.failures),
        }
        return (200 if ready else 503), b"application/json", orjson.dumps(document)

    def _list_models(self) -> tuple[int, bytes, bytes]:
        listing = [
            {
                "name": m.name,
                "version": m.version,
                "environment": m.environment,
                "since": m.since,
                "predictor": m.scoring.predictor_kind,
                "predictors": m.scoring.describe(),
                "artifact_sha256": m.scoring.version.artifact_sha256,
                "run_id": m.scoring.version.run_id,
                "signature": m.scoring.version.signature.to_json(),
            }
            for m in self.models.current.values()
        ]
        return 200, b"application/json", orjson.dumps({"models": listing})

    def _metrics(self) -> tuple[int, bytes, bytes]:
        body = self.metrics.render()
        if self.more_metrics is not None:
            body += self.more_metrics()
        return 200, self.metrics.content_type.encode(), body

    def _openapi(self) -> tuple[int, bytes, bytes]:
        return 200, b"application/json", orjson.dumps(openapi_spec(self.models.current))

    def _docs(self) -> tuple[int, bytes, bytes]:
        return 200, b"text/html; charset=utf-8", docs_page(self.models.current).encode()

    # -- lifespan ----------------------------------------------------------------------------------

    def _seal_every(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        """Hand the log's writer the rows copied so far, every ``seconds``, from the event
        loop (the only thread that copies rows into the request channel)."""
        assert self._log is not None

        def seal() -> None:
            self._log.seal()  # type: ignore[union-attr]
            loop.call_later(seconds, seal)

        loop.call_later(seconds, seal)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    self.on_startup()
                if self._log is not None and self.log_plan is not None:
                    self._seal_every(asyncio.get_running_loop(), self.log_plan.log.collect_every_s)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

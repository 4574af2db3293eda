"""The prediction server as a plain ASGI application.

No framework sits on the predict path: a request is routed by a dict lookup,
its body parsed by orjson into a float64 matrix, scored by the model's fastest
verified predictor and answered with orjson. Every response names the model and
version that produced it, in the body and in ``x-model-*`` headers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
import orjson

from modelrail.errors import InvalidRequestError
from modelrail.scoring.predictor import UNSCORABLE, Scored
from modelrail.serving.auth import TokenGuard
from modelrail.serving.docs import docs_page, openapi_spec
from modelrail.serving.input_spec import InputSpec
from modelrail.serving.inputs import Limits, ModelInput, matrix_from_csv, matrix_from_json
from modelrail.serving.metrics import ModelCounts, ServerMetrics
from modelrail.serving.models import ModelSet, ServedModel

log = logging.getLogger("modelrail.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ShadowHook = Callable[[ServedModel, Any, Any, float], None]

_JSON = (b"content-type", b"application/json")
_CHALLENGE = ((b"www-authenticate", b'Bearer realm="modelrail"'),)
_PREDICT_PREFIX = "/v1/models/"
_PREDICT_SUFFIX = "/predict"
# curl -d sends form encoding by default; the body is still the JSON the user typed.
_JSON_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"")


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
    ) -> None:
        self.models = models
        self.guard = guard
        # Open to anyone: health checks, and /metrics unless it is guarded too.
        self._open = frozenset({"/health", "/ready"} | (set() if guard_metrics else {"/metrics"}))
        self.environment = environment
        self.metrics = metrics
        self.limits = limits or Limits()
        self.shadow = shadow
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self._answering: dict[str, _Answering] = {}
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
        if self.guard is not None and path not in self._open:
            refusal = await self.guard.refusal(scope["headers"])
            if refusal is not None:
                await _error(send, refusal.status, refusal.message, "Authorization", _CHALLENGE)
                return
        if method == "POST":
            if path.startswith(_PREDICT_PREFIX) and path.endswith(_PREDICT_SUFFIX):
                name = path[len(_PREDICT_PREFIX) : -len(_PREDICT_SUFFIX)]
                await self._predict(scope, receive, send, name, mlflow=False)
                return
            if path == "/invocations":
                await self._predict(scope, receive, send, None, mlflow=True)
                return
        elif method in ("GET", "HEAD"):
            route = self._get_routes.get(path)
            if route is not None:
                status, content_type, body = route()
                await _respond(send, status, body, [(b"content-type", content_type)])
                return
        known = (
            path in self._get_routes
            or path == "/invocations"
            or (path.startswith(_PREDICT_PREFIX) and path.endswith(_PREDICT_SUFFIX))
        )
        if known:
            await _error(send, 405, f"method {method} is not allowed on {path}", "method")
        else:
            await _error(send, 404, f"no route {path}", "path")

    # -- predictions ----------------------------------------------------------------------------

    async def _predict(
        self, scope: Scope, receive: Receive, send: Send, name: str | None, *, mlflow: bool
    ) -> None:
        started = perf_counter()
        served = self._choose(name)
        if isinstance(served, str):
            await _error(send, 404, served, "model")
            return
        answering = self._answering.get(served.name)
        if answering is None or answering.served is not served:  # first use, or a new version
            answering = _Answering.of(served, self.metrics)
            self._answering[served.name] = answering
        try:
            content_type, body = await _read_body(scope, receive, self.limits)
            spec = served.input_spec
            if content_type == b"application/json":
                matrix = matrix_from_json(body, spec, self.limits, mlflow=mlflow)
            else:
                matrix = _other_content(content_type, body, spec, self.limits, mlflow)
            scoring_started = perf_counter()
            scored = served.scoring.score_input(matrix)
            scoring_seconds = perf_counter() - scoring_started
            payload_out = answering.answer(scored)
        except InvalidRequestError as exc:
            self.metrics.refused(served.name, exc.field or "body")
            answering.counts.failed(exc.http_status, perf_counter() - started)
            await _error(send, exc.http_status, exc.message, exc.field, answering.model_headers)
            return
        except _ClientGone:
            return
        except Exception as exc:  # a valid-looking input the model itself cannot score
            log.warning(
                "modelrail serve: %s %s could not score a request: %s",
                served.name,
                served.version,
                exc,
            )
            self.metrics.refused(served.name, "model")
            await _error(
                send,
                422,
                f"the model could not score this input: {type(exc).__name__}: {exc}",
                "inputs",
                answering.model_headers,
            )
            return
        # Counted before it is sent: a client holding its answer finds it in /metrics.
        answering.counts.answered(len(matrix), perf_counter() - started)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*answering.headers, (b"content-length", b"%d" % len(payload_out))],
            }
        )
        await send({"type": "http.response.body", "body": payload_out})
        if self.shadow is not None:
            self.shadow(served, matrix, scored.predictions, scoring_seconds)

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
        return 200, self.metrics.content_type.encode(), self.metrics.render()

    def _openapi(self) -> tuple[int, bytes, bytes]:
        return 200, b"application/json", orjson.dumps(openapi_spec(self.models.current))

    def _docs(self) -> tuple[int, bytes, bytes]:
        return 200, b"text/html; charset=utf-8", docs_page(self.models.current).encode()

    # -- lifespan ----------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    self.on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _ClientGone(Exception):
    pass


def _serialisable(values: np.ndarray[Any, Any]) -> Any:
    """Numbers and booleans as a C-ordered array (orjson writes those directly, whatever
    layout the library returned: XGBoost's and LightGBM's are often Fortran-ordered or
    views); labels of any other type (text, objects) as a list."""
    if values.dtype.kind in "biuf" and values.dtype.byteorder in "=|":
        return np.ascontiguousarray(values)
    if values.dtype.kind in "iuf":
        return np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("="))
    return values.tolist()


def _plain(value: Any) -> Any:
    """What orjson cannot write by itself: numpy scalars inside label lists, dates."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _refuse_unscorable(scored: Scored) -> None:
    """A score that came out NaN or infinite is no answer: the input was outside what the
    model can score (a feature so large that the arithmetic overflowed, say)."""
    unscorable = scored.nonfinite_rows()
    if unscorable is not None:
        row = int(np.flatnonzero(unscorable)[0])
        raise InvalidRequestError(f"row {row}: {UNSCORABLE}", field=f"inputs[{row}]", status=422)


@dataclass(frozen=True, slots=True)
class _Answering:
    """What every answer of one served version repeats, worked out on its first request."""

    served: ServedModel
    model_headers: tuple[tuple[bytes, bytes], ...]  # x-model-*
    headers: tuple[tuple[bytes, bytes], ...]  # content type + x-model-*
    document: dict[str, Any]  # model, version, environment
    counts: ModelCounts

    @classmethod
    def of(cls, served: ServedModel, metrics: ServerMetrics) -> _Answering:
        named = [
            (b"x-model-name", served.name.encode()),
            (b"x-model-version", str(served.version).encode()),
        ]
        if served.environment:
            named.append((b"x-model-environment", served.environment.encode()))
        document = {
            "model": served.name,
            "version": served.version,
            "environment": served.environment,
        }
        counts = metrics.for_model(served.name, served.version)
        return cls(served, tuple(named), (_JSON, *named), document, counts)

    def answer(self, scored: Scored) -> bytes:
        """The response body; an InvalidRequestError when a score is NaN or infinite."""
        document = self.document.copy()
        document["predictions"] = _serialisable(scored.predictions)
        if scored.probabilities is not None:
            document["probabilities"] = _serialisable(scored.probabilities)
        answer = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain)
        # orjson writes NaN and infinity as null: an answer without one has only finite
        # scores, and only one with a null (a None label, say) needs its scores looked at.
        if b"null" in answer:
            _refuse_unscorable(scored)
        return answer


def _other_content(
    content_type: bytes, body: bytes, spec: InputSpec, limits: Limits, mlflow: bool
) -> ModelInput:
    """A body whose content type is not exactly ``application/json``."""
    content_type = bytes(content_type.split(b";", 1)[0].strip().lower())
    if mlflow and content_type == b"text/csv":
        return matrix_from_csv(body, spec, limits)
    if content_type in _JSON_TYPES or content_type.endswith(b"+json"):
        return matrix_from_json(body, spec, limits, mlflow=mlflow)
    raise InvalidRequestError(
        f"content type {content_type.decode(errors='replace')!r} is not supported: "
        "send application/json" + (" or text/csv" if mlflow else ""),
        field="content-type",
        status=415,
    )


async def _read_body(scope: Scope, receive: Receive, limits: Limits) -> tuple[bytes, bytes]:
    """The request's content type (as sent; ``b""`` without one) and its whole body."""
    content_type = b""
    for key, value in scope["headers"]:
        if key == b"content-type":
            content_type = value
        elif key == b"content-length" and value.isdigit() and int(value) > limits.max_body_bytes:
            raise InvalidRequestError(
                f"the body is {int(value)} bytes; at most {limits.max_body_bytes}",
                field="body",
                status=413,
            )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise InvalidRequestError(
                f"the body is over {limits.max_body_bytes} bytes", field="body", status=413
            )
        if not message.get("more_body", False):
            return content_type, b"".join((*chunks, chunk)) if chunks else chunk
        chunks.append(chunk)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send,
    status: int,
    message: str,
    field: str | None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    body = orjson.dumps({"error": message, "field": field, "status": status})
    await _respond(send, status, body, [_JSON, *headers])

"""What the prediction server answers: the response body of a scored request, and what
every answer of one served version repeats (worked out once per version)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelrail.errors import InvalidRequestError
from modelrail.monitoring.prediction_rows import Origin
from modelrail.scoring.predictor import UNSCORABLE, Scored
from modelrail.serving.http_io import JSON
from modelrail.serving.metrics import ModelCounts, ServerMetrics
from modelrail.serving.models import ServedModel
from modelrail.serving.prediction_logging import LogPlan

__all__ = ["Answering"]


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
class Answering:
    """What every answer of one served version repeats, worked out on its first request."""

    served: ServedModel
    model_headers: tuple[tuple[bytes, bytes], ...]  # x-model-*
    headers: tuple[tuple[bytes, bytes], ...]  # content type + x-model-*
    document: dict[str, Any]  # model, version, environment
    counts: ModelCounts
    log_rate: float  # the share of its requests logged (0: none)
    origin: Origin | None  # what its logged rows repeat

    @classmethod
    def of(cls, served: ServedModel, metrics: ServerMetrics, plan: LogPlan | None) -> Answering:
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
        origin = plan.origin(served) if plan is not None else None
        rate = origin.rate if origin is not None else 0.0
        return cls(served, tuple(named), (JSON, *named), document, counts, rate, origin)

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

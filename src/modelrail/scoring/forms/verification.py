"""Whether a candidate form reproduces the model: identical labels, probabilities within
``PROBABILITY_ATOL``, regression values within ``VALUE_RTOL`` (see ``record.py``), and NaN
exactly where the model gives NaN. The answer is a reason to refuse the form, or None."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrail.scoring.evaluation import Scored
from modelrail.scoring.forms.record import PROBABILITY_ATOL, VALUE_RTOL


def disagreement(expected: Scored, found: Scored, *, float32: bool = False) -> str | None:
    """Why ``found`` is not the model's answer ``expected`` (same rows), or None. Labels of
    rows the form scores as near ties are not compared: production gives those rows to the
    model itself (``Scored.near_ties``; ``float32``: the form computes in float32)."""
    want, got = np.asarray(expected.predictions), np.asarray(found.predictions)
    if want.shape != got.shape:
        return f"answered {got.shape} for the model's {want.shape}"
    if want.dtype.kind == "f" and expected.probabilities is None:
        reason = _values(want, got)
        if reason is not None:
            return reason
    else:
        different = ~_equal(want, got)
        ties = found.near_ties(float32)
        if ties is not None:
            different &= ~ties
        differ = int(np.count_nonzero(different))
        if differ:
            return f"{differ} of {len(want)} labels differ"
    return _probabilities(expected.probabilities, found.probabilities)


def _equal(want: np.ndarray[Any, Any], got: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if want.dtype.kind in "fc" and got.dtype.kind in "fc":
        return np.asarray((want == got) | (np.isnan(want) & np.isnan(got)))
    try:
        return np.asarray(want == got, dtype=bool).reshape(want.shape)
    except (TypeError, ValueError):
        return np.asarray([a == b for a, b in zip(want.tolist(), got.tolist(), strict=True)])


def _values(want: np.ndarray[Any, Any], got: np.ndarray[Any, Any]) -> str | None:
    if got.dtype.kind not in "fiub":
        return "gave no numbers"
    got = got.astype(np.float64)
    if not np.array_equal(np.isnan(want), np.isnan(got)):
        return "NaN where the model gives a number, or the other way round"
    finite = np.isfinite(want)
    scale = float(np.abs(want[finite]).max()) if finite.any() else 0.0
    if np.allclose(got, want, rtol=VALUE_RTOL, atol=VALUE_RTOL * scale, equal_nan=True):
        return None
    worst = float(np.nanmax(np.abs(got - want)))
    return f"values differ by up to {worst:.3g}"


def _probabilities(want: Any, got: Any) -> str | None:
    if want is None:
        return None
    if got is None:
        return "gave no probabilities"
    want, got = np.asarray(want, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if want.shape != got.shape:
        return f"gave probabilities of shape {got.shape} for the model's {want.shape}"
    if not np.array_equal(np.isnan(want), np.isnan(got)):
        return "NaN probabilities where the model gives numbers, or the other way round"
    if np.allclose(got, want, rtol=0.0, atol=PROBABILITY_ATOL, equal_nan=True):
        return None
    worst = float(np.nanmax(np.abs(got - want)))
    return f"probabilities differ by up to {worst:.3g}"

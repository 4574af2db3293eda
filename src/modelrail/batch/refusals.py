"""Rows the model itself refuses.

A library that cannot score one row of a batch (scikit-learn's imputer meeting an infinity in
a text pipeline, a statsmodels formula meeting an unseen category, ...) raises for the whole
batch. Serving answers such a request with a 422; batch narrows the failure down to the rows
that cause it, by halving, so they can be named (``on_bad_rows='fail'``) or set aside with the
library's reason (``'skip'``) while every other row is scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelrail.errors import InvalidRequestError, ModelrailError

__all__ = ["Refused", "find_refused", "is_refusal", "refusal_reason"]

# Model calls spent narrowing one batch down: a handful of bad rows costs about
# 2 * log2(rows) calls each; a model that refuses most rows would cost two calls a row.
MAX_CALLS = 512

ScoreRows = Callable[[np.ndarray[Any, Any]], Any]


@dataclass(frozen=True)
class Refused:
    """Positions (within the rows tried) the model refuses, each with the library's reason;
    ``complete`` is False when the search stopped at the first or ran out of calls."""

    positions: list[int]
    reasons: list[str]
    complete: bool


def is_refusal(exc: BaseException) -> bool:
    """The model refusing its input: any library error, or a flavor naming a value it cannot
    score (an unseen category); other modelrail errors (a damaged file, say) are not."""
    return isinstance(exc, InvalidRequestError) or not isinstance(exc, ModelrailError)


def refusal_reason(exc: BaseException) -> str:
    if isinstance(exc, InvalidRequestError):
        return exc.message
    return f"the model could not score it: {type(exc).__name__}: {exc}"


def find_refused(score: ScoreRows, rows: int, cause: BaseException, *, first_only: bool) -> Refused:
    """Rows of ``0 .. rows`` that ``score`` (given row positions) raises on, ``cause`` being
    what scoring them all raised: the rows it names, if it names any, else those found by
    scoring each half of a failing range in turn. Only refusals count (``is_refusal``);
    other errors are raised."""
    if isinstance(cause, InvalidRequestError) and cause.rows:
        named = sorted({r for r in cause.rows if 0 <= r < rows})
        if len(named) == len(cause.rows):
            return Refused(named, [cause.message] * len(named), complete=True)
    search = _Search(score, first_only)
    search.narrow(0, rows)
    return Refused(search.positions, search.reasons, search.complete)


class _Search:
    def __init__(self, score: ScoreRows, first_only: bool) -> None:
        self.score = score
        self.first_only = first_only
        self.positions: list[int] = []
        self.reasons: list[str] = []
        self.calls = 0
        self.complete = True

    def narrow(self, start: int, stop: int) -> None:
        """Search ``start .. stop``, known to fail as a whole."""
        found = len(self.positions)
        if stop - start == 1:
            self._try(start, stop)
        else:
            middle = (start + stop) // 2
            for low, high in ((start, middle), (middle, stop)):
                if not self.complete or (self.first_only and self.positions):
                    return
                self._try(low, high)
        if len(self.positions) == found:  # it fails only as a whole: no row is at fault
            self.complete = False

    def _try(self, start: int, stop: int) -> None:
        if self.calls >= MAX_CALLS:
            self.complete = False
            return
        self.calls += 1
        try:
            self.score(np.arange(start, stop))
        except Exception as exc:
            if not is_refusal(exc):
                raise
            if stop - start == 1:
                self.positions.append(start)
                self.reasons.append(refusal_reason(exc))
            else:
                self.narrow(start, stop)

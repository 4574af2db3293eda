"""Timing a predictor for the two workloads, within a bounded time: one row (the median of
many single-row calls, as a server makes them) and a large batch (rows per second over one
call on many rows, the best of a few)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

ONE_ROW_BUDGET_S = 0.06
ONE_ROW_CALLS = 200
BATCH_BUDGET_S = 0.2
BATCH_CALLS = 3


def one_row_us(
    score: Callable[[Any], Any],
    rows: Sequence[Any],
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """The median microseconds of single-row calls, cycling through ``rows``."""
    score(rows[0])  # the first call pays for caches and lazy setup
    times: list[float] = []
    started = clock()
    while len(times) < ONE_ROW_CALLS:
        row = rows[len(times) % len(rows)]
        before = clock()
        score(row)
        after = clock()
        times.append(after - before)
        if after - started > ONE_ROW_BUDGET_S and len(times) >= 5:
            break
    return statistics.median(times) * 1e6


def batch_rows_per_s(
    score: Callable[[Any], Any],
    batch: Any,
    rows: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Rows per second of the fastest of a few calls on ``batch`` (``rows`` rows)."""
    best = float("inf")
    started = clock()
    for _ in range(BATCH_CALLS):
        before = clock()
        score(batch)
        after = clock()
        best = min(best, after - before)
        if after - started > BATCH_BUDGET_S:
            break
    return rows / max(best, 1e-9)

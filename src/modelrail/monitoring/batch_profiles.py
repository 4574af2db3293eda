"""A batch run's profile, computed from the batches it scores anyway (``batch.runner``).

The input profile is fed each input batch's model columns on the scoring thread, the
prediction distribution each output batch on the writing thread; nothing is read twice.
Like the reference profile at registration, profiling can never fail a run: an error stops
it (with a warning) and the run records no profile.

The inputs' distributions (percentiles, bins, category shares, moments) come from a random
sample of at most ``SAMPLED_ROWS`` rows of each batch, an eighth of a default batch: the
profile keeps a sample of 20,000 values per column anyway, and profiling every row took
most of a 30-column Parquet run's time. Each column's counts of values and of missing
values are exact (nulls, NaN and infinities, counted on the whole batch), as is the row count.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.entities import Signature
from modelrail.monitoring.profiles import CATEGORICAL, NUMERIC, BatchProfile, DatasetProfile
from modelrail.monitoring.profiling import ColumnProfiler, ProfileBuilder
from modelrail.monitoring.reference import predicts_labels

__all__ = ["BatchProfiling"]

log = logging.getLogger("modelrail")

SAMPLED_ROWS = 4096


class BatchProfiling:
    """Profiles of one batch run's input columns ``columns`` and of its output column
    ``prediction`` (the first prediction column, for a model of several outputs)."""

    def __init__(self, signature: Signature, columns: Sequence[str], prediction: str) -> None:
        self.columns = list(columns)
        self.prediction = prediction
        self.first_row = 0
        self._inputs = ProfileBuilder()
        kind = CATEGORICAL if predicts_labels(signature) else NUMERIC
        self._predictions = ColumnProfiler(kind)
        self._failed = False
        self._rng = np.random.default_rng(7)
        self._rows = 0
        self._missing = dict.fromkeys(self.columns, 0)

    def add_input(self, batch: pa.RecordBatch) -> None:
        if not self._failed:
            self._guarded(lambda: self._add_input(batch.select(self.columns)))

    def _add_input(self, batch: pa.RecordBatch) -> None:
        rows = batch.num_rows
        self._rows += rows
        for name, column in zip(self.columns, batch.columns, strict=True):
            self._missing[name] += _missing(column)
        if rows > SAMPLED_ROWS:
            chosen = np.sort(self._rng.choice(rows, SAMPLED_ROWS, replace=False))
            batch = batch.take(pa.array(chosen))
        self._inputs.update(batch)

    def add_output(self, batch: pa.RecordBatch) -> None:
        if not self._failed and batch.num_rows:
            column = batch.column(self.prediction)
            self._guarded(lambda: self._predictions.update(column))

    def to_text(self) -> str | None:
        """The run's ``BatchProfile`` as JSON, or None when profiling failed."""
        if self._failed:
            return None
        try:
            profile = BatchProfile(self._exact(), self._predictions.finish(), self.first_row)
            return profile.to_text()
        except Exception:  # see _guarded
            log.warning("modelrail: profiling the batch run failed", exc_info=True)
            return None

    def _exact(self) -> DatasetProfile:
        """The sample's profile with the whole input's counts."""
        sampled = self._inputs.finish(rows=self._rows)
        columns = {
            name: dataclasses.replace(
                column,
                count=self._rows - self._missing.get(name, 0),
                missing=self._missing.get(name, 0),
            )
            for name, column in sampled.columns.items()
        }
        return dataclasses.replace(sampled, columns=columns)

    def _guarded(self, step: Any) -> None:
        try:
            step()
        except Exception:  # a bug in profiling must never fail a batch run
            self._failed = True
            log.warning("modelrail: profiling the batch run failed", exc_info=True)


def _missing(column: Any) -> int:
    """Nulls, and NaN or infinity in a float column: what a profile counts as missing."""
    missing = int(column.null_count)
    if pa.types.is_floating(column.type):
        missing += int(pc.sum(pc.invert(pc.is_finite(column))).as_py() or 0)
    return missing

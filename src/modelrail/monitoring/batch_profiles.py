"""A batch run's profile, computed from the batches it scores anyway (``batch.runner``).

The input profile is fed each input batch's model columns on the scoring thread, the
prediction distribution each output batch on the writing thread; nothing is read twice.
Like the reference profile at registration, profiling can never fail a run: an error stops
it (with a warning) and the run records no profile.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from modelrail.entities import Signature
from modelrail.monitoring.profiles import CATEGORICAL, NUMERIC, BatchProfile
from modelrail.monitoring.profiling import ColumnProfiler, ProfileBuilder
from modelrail.monitoring.reference import predicts_labels

__all__ = ["BatchProfiling"]

log = logging.getLogger("modelrail")


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

    def add_input(self, batch: pa.RecordBatch) -> None:
        if not self._failed:
            self._guarded(lambda: self._inputs.update(batch.select(self.columns)))

    def add_output(self, batch: pa.RecordBatch) -> None:
        if not self._failed and batch.num_rows:
            column = batch.column(self.prediction)
            self._guarded(lambda: self._predictions.update(column))

    def to_text(self) -> str | None:
        """The run's ``BatchProfile`` as JSON, or None when profiling failed."""
        if self._failed:
            return None
        try:
            profile = BatchProfile(
                self._inputs.finish(), self._predictions.finish(), self.first_row
            )
            return profile.to_text()
        except Exception:  # see _guarded
            log.warning("modelrail: profiling the batch run failed", exc_info=True)
            return None

    def _guarded(self, step: Any) -> None:
        try:
            step()
        except Exception:  # a bug in profiling must never fail a batch run
            self._failed = True
            log.warning("modelrail: profiling the batch run failed", exc_info=True)

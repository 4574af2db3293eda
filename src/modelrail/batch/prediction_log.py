"""A sample of a batch run's scored rows in the prediction log, so drift and live metrics
cover batch scoring too and outcomes can be attached to output rows by their ids.

A run logs when its reference names an environment (``churn@prod``) whose
``[environments.NAME.monitoring] log_predictions`` is above 0: that share of the rows it
writes, chosen at random, with source "batch". A row's ``request_id`` is its id column
values as text, joined by "|" when there are several (a whole float such as 17.0 reads
17, as labels loaded by id do), so ``modelrail feedback load --id-column`` finds it.

The sample is taken as rows are scored (on the scoring thread) but logged only once the
output has them (``written``, on the writing thread), into whole files of the run's own,
named by the run and the first input row they hold: ``...-batch-<run>-<row>.parquet``. A
checkpoint writes what is waiting, so no file holds rows on both sides of one, and a resumed
run first removes its files from the checkpoint on (``discard_after``): the rows it scores
again are logged once. Runs on Spark log nothing: their rows are scored in the executors.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.monitoring.logfiles import PREDICTIONS, TIME_TYPE, log_files, write_table
from modelrail.monitoring.prediction_rows import Origin, prediction_text, prediction_value
from modelrail.monitoring.profiling import label_text
from modelrail.monitoring.storage import MonitoringFolder
from modelrail.refs import Ref

if TYPE_CHECKING:
    from modelrail.batch.host import BatchHost
    from modelrail.batch.scorer import BatchScorer, ScoredBatch
    from modelrail.batch.spec import JobSpec
    from modelrail.entities import ModelVersion

__all__ = ["BatchLog", "discard_after", "open_batch_log"]

log = logging.getLogger("modelrail.batch")

FILE_ROWS = 50_000  # logged rows per file, as the prediction server's


def open_batch_log(
    client: BatchHost, spec: JobSpec, version: ModelVersion, scorer: BatchScorer, run_id: str
) -> BatchLog | None:
    """The run's prediction log, or None when it logs nothing."""
    environment = Ref.parse(spec.reference).environment
    if environment is None or spec.engine != "local":
        return None
    monitoring = client.policy.environment(environment).monitoring
    if monitoring.log_predictions <= 0:
        return None
    origin = Origin.of(
        version,
        environment=environment,
        source="batch",
        rate=monitoring.log_predictions,
        exclude=monitoring.exclude_columns,
    )
    folder = MonitoringFolder(client.settings.monitoring_folder)
    return BatchLog(folder, origin, scorer, run_id)


def discard_after(
    root: str, model: str, run_id: str, first_row: int, *, since: float | None = None
) -> int:
    """Remove the log files of run ``run_id`` that start at input row ``first_row`` or
    later (files of runs logged from ``since``, a time); how many were removed."""
    folder = MonitoringFolder(root)
    pattern = re.compile(rf"-batch-{re.escape(run_id)}-(\d+)\.parquet$")
    removed = 0
    for relative in log_files(folder, PREDICTIONS, model, since=since):
        found = pattern.search(relative)
        if found is not None and int(found[1]) >= first_row:
            folder.remove(relative)
            removed += 1
    return removed


class BatchLog:
    def __init__(
        self, folder: MonitoringFolder, origin: Origin, scorer: BatchScorer, run_id: str
    ) -> None:
        self.folder = folder
        self.origin = origin
        self.run_id = run_id
        self.id_columns = scorer.id_columns
        self.predictions = scorer.prediction_columns()
        probability = scorer.probability_columns()
        self.probability = probability[0] if len(probability) == 1 else None
        self._random = np.random.default_rng()
        self._sampled: deque[tuple[int, pa.Table]] = deque()  # scored, maybe not written
        self._waiting: list[tuple[int, pa.Table]] = []  # written to the output, not logged
        self._waiting_rows = 0
        self._lock = threading.Lock()

    def add(self, batch: pa.RecordBatch, scored: ScoredBatch, first_row: int) -> None:
        """Take the sample of ``scored``'s output rows (``batch``: the input they came from,
        whose first row is the run's ``first_row``); it is logged once ``written`` says the
        output has them. Never raises: logging never fails a run."""
        try:
            table = self._sample(batch, scored, first_row)
        except Exception:
            log.exception("modelrail: could not log the predictions of a batch")
            return
        if table is not None:
            self._sampled.append((first_row, table))  # (a deque: safe across the two threads)

    def written(self, next_row: int, *, checkpoint: bool = False) -> None:
        """The output holds every row before input row ``next_row``: their samples may be
        logged; at a ``checkpoint`` everything waiting is, so no file spans one."""
        with self._lock:
            while self._sampled and self._sampled[0][0] < next_row:
                first_row, table = self._sampled.popleft()
                self._waiting.append((first_row, table))
                self._waiting_rows += table.num_rows
            if checkpoint or self._waiting_rows >= FILE_ROWS:
                self._write()

    def close(self) -> None:
        """Write what is waiting (the run's output is committed)."""
        with self._lock:
            while self._sampled:
                self._waiting.append(self._sampled.popleft())
            self._write()

    def _write(self) -> None:
        if not self._waiting:
            return
        first_row = self._waiting[0][0]
        table = pa.concat_tables([t for _, t in self._waiting])
        self._waiting, self._waiting_rows = [], 0
        name = f"{int(time.time() * 1000)}-batch-{self.run_id}-{first_row}.parquet"
        try:
            write_table(self.folder, PREDICTIONS, self.origin.model, table, name=name)
        except Exception:  # disk full, no permission: the run goes on
            log.exception("modelrail: could not write the prediction log of a batch run")

    def _sample(
        self, batch: pa.RecordBatch, scored: ScoredBatch, first_row: int
    ) -> pa.Table | None:
        output = scored.output
        if output.num_rows == 0:
            return None
        inputs = _scored_rows(batch, scored, first_row)
        chosen = None
        if self.origin.rate < 1:
            picked = np.flatnonzero(self._random.random(output.num_rows) < self.origin.rate)
            if picked.size == 0:
                return None
            chosen = pa.array(picked)
            output, inputs = output.take(chosen), inputs.take(chosen)
        return self._table(output, inputs)

    def _table(self, output: pa.RecordBatch, inputs: pa.RecordBatch) -> pa.Table:
        rows = output.num_rows
        origin = self.origin
        values = [output.column(name) for name in self.predictions]
        if len(values) == 1:
            text = prediction_text(values[0])
            probabilities = None
            if self.probability is not None:
                positive = output.column(self.probability).to_numpy(zero_copy_only=False)
                probabilities = np.column_stack([1 - positive, positive])
            value = prediction_value(_numbers(values[0]), probabilities, origin.classifier)
        else:  # several outputs: each row's as a JSON list, no one number
            stacked = np.column_stack([v.to_numpy(zero_copy_only=False) for v in values])
            text, value = prediction_text(stacked), pa.nulls(rows, pa.float64())
        micros = int(time.time() * 1_000_000)
        columns = [
            request_ids(output, self.id_columns),
            pa.repeat(pa.scalar(0, pa.int32()), rows),
            pa.repeat(pa.scalar(micros, pa.int64()), rows).cast(TIME_TYPE),
            pa.repeat(pa.scalar(origin.model, pa.string()), rows),
            pa.repeat(pa.scalar(origin.version, pa.int64()), rows),
            pa.repeat(pa.scalar(origin.environment, pa.string()), rows),
            pa.repeat(pa.scalar(origin.source, pa.string()), rows),
            pa.repeat(pa.scalar(origin.rate, pa.float64()), rows),
            pa.nulls(rows, pa.float64()),
            text,
            value,
            *_inputs(origin, inputs),
        ]
        return pa.Table.from_arrays(columns, schema=origin.schema())


def _numbers(values: Any) -> np.ndarray[Any, Any]:
    """A prediction column as numpy (numbers with nulls as NaN; other values as objects)."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        result: np.ndarray[Any, Any] = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        return result
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)


def _scored_rows(batch: pa.RecordBatch, scored: ScoredBatch, first_row: int) -> pa.RecordBatch:
    """The input rows that made ``scored``'s output, in its order (the batch without the
    rows set aside)."""
    rejects = scored.rejects
    if rejects is None or rejects.num_rows == 0:
        return batch
    kept = np.ones(batch.num_rows, dtype=bool)
    kept[rejects.column("row_number").to_numpy() - first_row] = False
    return batch.filter(pa.array(kept))


def request_ids(table: pa.RecordBatch | pa.Table, id_columns: Sequence[str]) -> pa.Array:
    """Each row's id columns as text, joined by "|" (a whole float reads as an integer)."""
    texts = [_id_text(table.column(name)) for name in id_columns]
    if len(texts) == 1:
        return texts[0]
    joined: pa.Array = pc.binary_join_element_wise(*texts, "|")
    return joined


def _id_text(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_floating(values.type):
        whole = pc.equal(values, pc.floor(values))
        if pc.all(whole).as_py() is not False:
            return values.cast(pa.int64()).cast(pa.string())
    text: pa.Array = values.cast(pa.string())
    return text


def _inputs(origin: Origin, inputs: pa.RecordBatch) -> list[pa.Array]:
    found = []
    for name, number in zip(origin.names, origin.numeric, strict=True):
        column = inputs.column(name)
        # Text as profiles count it (times without trailing zeros, categories decoded).
        found.append(column.cast(pa.float64()) if number else label_text(column).cast(pa.string()))
    return found

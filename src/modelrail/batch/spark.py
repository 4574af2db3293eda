"""The Spark engine: the same job, with scoring spread over a Spark cluster's executors.

The input files are found and checked, and fingerprinted, exactly as the local engine does;
Spark then reads them, and each executor scores its partitions in Arrow batches with the
model artifact, and the predictor form chosen for batches, shipped to it as bytes together
with their sha256, which the executor checks before loading (``spark_executor``). A SQL
query is read on the driver, as the local engine reads it, and its rows are handed to the
executors a window of batches at a time. Into a Parquet output, each executor writes its
partitions' part files into the run's staging folder itself; into other outputs, the scored
batches come back to the driver one partition at a time and go through the same sink
writers. Either way the outputs, run records and the
exactly-once guarantee are the local engine's. Executors need modelrail installed
(``pip install 'modelrail[spark]'``). Row numbers of rejected rows are
``partition << 40 | position in the partition`` for files (Spark has no global row order)
and the local engine's for a query.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from modelrail import errors
from modelrail.batch.scorer import BatchScorer, ScoredBatch
from modelrail.batch.spark_executor import (
    RESULT_SCHEMA,
    ROW_COLUMN,
    ShippedModel,
    score_on_executor,
)
from modelrail.batch.spec import JobSpec
from modelrail.batch.stages import Stage
from modelrail.entities import ModelVersion
from modelrail.errors import BatchInputError, ModelrailError

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.batch.sinks.base import Writer
    from modelrail.batch.sources import Source

# Most batches of a driver-read input sent to Spark at once; the feeder reads a window ahead.
_WINDOW_BATCHES = 8
_NOTHING = pa.RecordBatch.from_pydict({})


def spark_session(spec: JobSpec) -> Any:
    """The active session (spark-submit), or one on ``MODELRAIL_SPARK_MASTER`` / local[*]."""
    # pyspark warns on every Arrow call that it has not been certified with pandas 3; the
    # engine hands it Arrow batches only, never pandas frames.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError as exc:
        raise BatchInputError(
            "the spark {engine} needs pyspark: pip install 'modelrail[spark]'",
            params=("engine",),
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    master = str(spec.options.get("spark_master") or os.environ.get("MODELRAIL_SPARK_MASTER", ""))
    builder = SparkSession.builder.appName("modelrail-batch").master(master or "local[*]")
    if not master or master.startswith("local"):
        # Local workers must run this interpreter, the one modelrail is installed in;
        # pyspark reads the worker's interpreter from the environment only.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(spec.batch_rows))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def spark_scored_batches(
    spec: JobSpec,
    source: Source,
    version: ModelVersion,
    artifacts: ArtifactStore,
    scorer: BatchScorer,
    run_id: str,
    writer: Writer | None = None,
) -> Generator[ScoredBatch, None, None]:
    """Score ``source`` on Spark; yields the scored batches on the driver, a partition at a
    time, so the driver's memory stays bounded too. Where ``writer`` takes part files that
    executors write (Parquet), it yields only their row counts, then hands it the files."""
    files = getattr(source, "files", None)  # first: it refuses inputs Spark cannot read
    spark = spark_session(spec)
    artifact = artifacts.read_verified(
        version.artifact_sha256, size=version.artifact_size, label=version.reference
    )
    form = _batch_form(artifacts, version)
    staged = getattr(writer, "staged_parts", None)
    parts = staged() if staged is not None else None
    shipped = spark.sparkContext.broadcast(
        ShippedModel(version, artifact, scorer.id_fields, spec.on_bad_rows, run_id, parts, form)
    )

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from score_on_executor(shipped.value, batches)

    frames = _file_frame(spark, source, files) if files else _driver_windows(spark, spec, source)
    written: list[str] = []
    try:
        for frame in frames:
            results = frame.mapInArrow(score_partition, RESULT_SCHEMA)
            for row in results.toLocalIterator(prefetchPartitions=True):
                if row["error"]:
                    raise _executor_error(row)
                if row["part"] is not None:
                    written.append(row["part"])
                yield _scored(row)
        if parts is not None:
            writer.adopt(written)  # type: ignore[union-attr]
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
        shipped.unpersist()


def _batch_form(artifacts: ArtifactStore, version: ModelVersion) -> bytes | None:
    """The bytes of the form chosen for batches, verified here and again on each executor."""
    from modelrail.scoring.forms.record import BATCH, forms_record

    record = forms_record(version)
    chosen = None if record is None else record.chosen_for(BATCH)
    if chosen is None or chosen.sha256 is None:
        return None
    label = f"{version.reference} {chosen.kind} form"
    return artifacts.read_verified(chosen.sha256, size=chosen.size, label=label)


def _file_frame(spark: Any, source: Source, files: list[Path]) -> Iterator[Any]:
    """The input files as one DataFrame that Spark reads on its executors."""
    from pyspark.sql.pandas.types import from_arrow_schema

    reader = spark.read.schema(from_arrow_schema(source.schema))
    paths = [str(path) for path in files]
    frame = (
        reader.csv(paths, header=True, mode="FAILFAST")
        if getattr(source, "kind", "") == "CSV"
        else reader.parquet(*paths)
    )
    yield frame.select(*source.schema.names)


def _driver_windows(spark: Any, spec: JobSpec, source: Source) -> Iterator[Any]:
    """A source only the driver can read (a SQL query), as DataFrames of a few batches each:
    one batch per core, at most ``_WINDOW_BATCHES``, so the driver holds a bounded amount
    however large the cluster. The next window is read while Spark scores this one. Each
    row carries its number, so rejects name the rows the local engine would."""
    if ROW_COLUMN in source.schema.names:
        raise BatchInputError(
            f"the input has a column named {ROW_COLUMN!r}, which the Spark engine uses "
            "itself: rename it in the query"
        )
    per_window = max(1, min(spark.sparkContext.defaultParallelism, _WINDOW_BATCHES))
    with Stage(source.batches(spec.batch_rows), "spark-feeder", per_window) as batches:
        row = 0
        for window in _windows(batches, per_window):
            numbered = []
            for batch in window:
                numbers = pa.array(np.arange(row, row + batch.num_rows, dtype=np.int64))
                numbered.append(batch.append_column(ROW_COLUMN, numbers))
                row += batch.num_rows
            yield spark.createDataFrame(pa.Table.from_batches(numbered))


def _windows(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[list[pa.RecordBatch]]:
    window: list[pa.RecordBatch] = []
    for batch in batches:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def _scored(row: Any) -> ScoredBatch:
    if row["part"] is not None or not row["output"]:  # written on the executor
        return ScoredBatch(
            output=_NOTHING,
            rejects=None,
            rows_read=int(row["rows_read"]),
            written_elsewhere=int(row["rows_written"]),
            rejected_elsewhere=int(row["rows_rejected"]),
        )
    rejects = _read_ipc(row["rejects"])
    return ScoredBatch(
        output=_read_ipc(row["output"]),
        rejects=rejects if rejects.num_rows else None,
        rows_read=int(row["rows_read"]),
    )


def _executor_error(row: Any) -> ModelrailError:
    """The error an executor raised, as the local engine would have raised it."""
    kind = getattr(errors, str(row["error_type"]), None)
    if isinstance(kind, type) and issubclass(kind, ModelrailError):
        return kind(row["error"])
    return BatchInputError(row["error"])


def _read_ipc(data: bytes) -> pa.RecordBatch:
    with pa.ipc.open_stream(data) as reader:
        table = reader.read_all()
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)

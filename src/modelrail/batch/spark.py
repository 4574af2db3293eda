"""The Spark engine: the same job, with scoring spread over a Spark cluster's executors.

The input files are found and checked, and fingerprinted, exactly as the local engine does;
Spark then reads them, and each executor scores its partitions in Arrow batches with the
model artifact shipped to it as bytes together with its sha256, which the executor checks
before loading. A SQL query is read on the driver, as the local engine reads it, and its
rows are handed to the executors a window of batches at a time. The scored batches come back
to the driver one partition at a time and go through the same sink writers, so outputs, run
records and the exactly-once guarantee are the local engine's. Executors need modelrail
installed (``pip install 'modelrail[spark]'``). Row numbers of rejected rows are
``partition << 40 | position in the partition`` for files (Spark has no global row order)
and the local engine's for a query.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import warnings
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from modelrail.batch.scorer import BatchScorer, ScoredBatch
from modelrail.batch.spec import JobSpec
from modelrail.batch.stages import Stage
from modelrail.entities import ModelVersion
from modelrail.errors import ArtifactIntegrityError, BatchInputError, ModelrailError

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.batch.sources import Source

_RESULT_SCHEMA = "output binary, rejects binary, rows_read long, error string"
_PARTITION_SHIFT = 40
_ROW_COLUMN = "_modelrail_row_number"
# Most batches of a driver-read input sent to Spark at once; the feeder reads a window ahead.
_WINDOW_BATCHES = 8


@dataclass(frozen=True)
class ShippedModel:
    """What an executor needs to score: the artifact's bytes, its sha256 and how to load it."""

    version: ModelVersion
    artifact: bytes
    id_fields: tuple[pa.Field, ...]
    on_bad_rows: str
    run_id: str


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
            "--engine spark needs pyspark: pip install 'modelrail[spark]'"
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
) -> Generator[ScoredBatch, None, None]:
    """Score ``source`` on Spark; yields the scored batches on the driver, a partition at a
    time, so the driver's memory stays bounded too."""
    spark = spark_session(spec)
    artifact = artifacts.read_verified(
        version.artifact_sha256, size=version.artifact_size, label=version.reference
    )
    shipped = spark.sparkContext.broadcast(
        ShippedModel(version, artifact, scorer.id_fields, spec.on_bad_rows, run_id)
    )

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from _score_on_executor(shipped.value, batches)

    files = getattr(source, "files", None)
    frames = _file_frame(spark, source, files) if files else _driver_windows(spark, spec, source)
    try:
        for frame in frames:
            results = frame.mapInArrow(score_partition, _RESULT_SCHEMA)
            for row in results.toLocalIterator(prefetchPartitions=True):
                if row["error"]:
                    raise BatchInputError(row["error"])
                rejects = _read_ipc(row["rejects"])
                yield ScoredBatch(
                    output=_read_ipc(row["output"]),
                    rejects=rejects if rejects.num_rows else None,
                    rows_read=int(row["rows_read"]),
                )
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
        shipped.unpersist()


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
    if _ROW_COLUMN in source.schema.names:
        raise BatchInputError(
            f"the input has a column named {_ROW_COLUMN!r}, which the Spark engine uses "
            "itself: rename it in the query"
        )
    per_window = max(1, min(spark.sparkContext.defaultParallelism, _WINDOW_BATCHES))
    with Stage(source.batches(spec.batch_rows), "spark-feeder", per_window) as batches:
        row = 0
        for window in _windows(batches, per_window):
            numbered = []
            for batch in window:
                numbers = pa.array(np.arange(row, row + batch.num_rows, dtype=np.int64))
                numbered.append(batch.append_column(_ROW_COLUMN, numbers))
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


def _score_on_executor(
    shipped: ShippedModel, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    position = partition << _PARTITION_SHIFT
    try:
        # Loaded once per partition (a partition is large): no cache that outlives the task.
        scorer = _load_scorer(shipped)
        for batch in batches:
            if batch.num_rows and _ROW_COLUMN in batch.schema.names:
                # The driver's numbers: a partition holds consecutive rows of one window.
                position = batch.column(_ROW_COLUMN)[0].as_py()
                batch = batch.select([n for n in batch.schema.names if n != _ROW_COLUMN])
            scored = scorer.score(batch, position, shipped.run_id)
            position += batch.num_rows
            rejects = scored.rejects if scored.rejects is not None else _no_rejects()
            yield _result(_write_ipc(scored.output), _write_ipc(rejects), batch.num_rows, "")
    except ModelrailError as exc:
        # Handed to the driver as data: a Python traceback through Spark would bury it.
        yield _result(b"", b"", 0, exc.message)


def _load_scorer(shipped: ShippedModel) -> BatchScorer:
    from modelrail.flavors.base import get_flavor
    from modelrail.registry import LoadedModel
    from modelrail.scoring.predictor import ScoringModel

    version = shipped.version
    if hashlib.sha256(shipped.artifact).hexdigest() != version.artifact_sha256:
        raise ArtifactIntegrityError(
            f"the artifact of {version.reference} shipped to a Spark executor does not match "
            "its sha256: refusing to score with it"
        )
    with tempfile.TemporaryDirectory(prefix="modelrail-executor-") as folder:
        path = Path(folder) / "model"
        path.write_bytes(shipped.artifact)
        model = get_flavor(version.flavor).load(path, version.flavor_details)
    loaded = ScoringModel(LoadedModel(version=version, model=model))
    return BatchScorer(loaded, shipped.id_fields, on_bad_rows=shipped.on_bad_rows)  # type: ignore[arg-type]


def _result(output: bytes, rejects: bytes, rows: int, error: str) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"output": [output], "rejects": [rejects], "rows_read": [rows], "error": [error]},
        schema=pa.schema(
            [
                ("output", pa.binary()),
                ("rejects", pa.binary()),
                ("rows_read", pa.int64()),
                ("error", pa.string()),
            ]
        ),
    )


def _no_rejects() -> pa.RecordBatch:
    from modelrail.batch.scorer import REJECT_SCHEMA

    return pa.RecordBatch.from_pylist([], schema=REJECT_SCHEMA)


def _write_ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def _read_ipc(data: bytes) -> pa.RecordBatch:
    with pa.ipc.open_stream(data) as reader:
        table = reader.read_all()
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)

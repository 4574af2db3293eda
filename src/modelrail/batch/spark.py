"""The Spark engine: the same job, with scoring spread over a Spark cluster's executors.

The input files are found and checked, and fingerprinted, exactly as the local engine does;
Spark then reads them, and each executor scores its partitions in Arrow batches with the
model artifact shipped to it as bytes together with its sha256, which the executor checks
before loading. The scored batches come back to the driver one partition at a time and go
through the same sink writers, so outputs, run records and the exactly-once guarantee are
the local engine's. Executors need modelrail installed (``pip install 'modelrail[spark]'``).
Row numbers of rejected rows are ``partition << 40 | position in the partition``.
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

import pyarrow as pa

from modelrail.batch.scorer import BatchScorer, ScoredBatch
from modelrail.batch.spec import JobSpec
from modelrail.entities import ModelVersion
from modelrail.errors import ArtifactIntegrityError, BatchInputError, ModelrailError

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.batch.sources import Source

_RESULT_SCHEMA = "output binary, rejects binary, rows_read long, error string"
_PARTITION_SHIFT = 40


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
    files = getattr(source, "files", None)
    if not files:
        raise BatchInputError(
            "--engine spark reads Parquet or CSV files; score a --query with the local engine"
        )
    from pyspark.sql.pandas.types import from_arrow_schema

    spark = spark_session(spec)
    schema = from_arrow_schema(source.schema)
    paths = [str(path) for path in files]
    reader = spark.read.schema(schema)
    frame = (
        reader.csv(paths, header=True, mode="FAILFAST")
        if getattr(source, "kind", "") == "CSV"
        else reader.parquet(*paths)
    ).select(*source.schema.names)
    artifact = artifacts.read_verified(
        version.artifact_sha256, size=version.artifact_size, label=version.reference
    )
    shipped = spark.sparkContext.broadcast(
        ShippedModel(version, artifact, scorer.id_fields, spec.on_bad_rows, run_id)
    )

    def score_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from _score_on_executor(shipped.value, batches)

    results = frame.mapInArrow(score_partition, _RESULT_SCHEMA)
    try:
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
        shipped.unpersist()


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

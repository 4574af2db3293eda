"""What runs on a Spark executor: the verified model scoring one partition's Arrow batches.

Each partition's result goes back to the driver as rows of ``RESULT_SCHEMA``: the scored
batches as Arrow IPC bytes, or, for a Parquet output, only the name and row counts of the
part file that the executor wrote into the run's staging folder itself. An error that
modelrail raises travels as data (its class name and message), so the driver raises the
same error instead of a Python traceback buried in a Java one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from modelrail.batch.scorer import REJECT_SCHEMA, BatchScorer, ScoredBatch
from modelrail.entities import ModelVersion
from modelrail.errors import ArtifactIntegrityError, ModelrailError

if TYPE_CHECKING:
    from modelrail.batch.sinks.parquet import StagedParts

RESULT_SCHEMA = (
    "output binary, rejects binary, rows_read long, part string, rows_written long, "
    "rows_rejected long, error_type string, error string"
)
# Files have no global row order on Spark: a partition's rows are numbered from this.
PARTITION_SHIFT = 40
# The row number of a driver-read input, which travels with each row.
ROW_COLUMN = "_modelrail_row_number"

_RESULT_FIELDS = pa.schema(
    [
        ("output", pa.binary()),
        ("rejects", pa.binary()),
        ("rows_read", pa.int64()),
        ("part", pa.string()),
        ("rows_written", pa.int64()),
        ("rows_rejected", pa.int64()),
        ("error_type", pa.string()),
        ("error", pa.string()),
    ]
)


@dataclass(frozen=True)
class ShippedModel:
    """What an executor needs to score: the artifact's bytes, its sha256 and how to load it,
    the bytes of the predictor form chosen for batches (checked against the sha256 in the
    version's forms record), and where to write when it writes the output itself."""

    version: ModelVersion
    artifact: bytes
    id_fields: tuple[pa.Field, ...]
    on_bad_rows: str
    run_id: str
    parts: StagedParts | None = None
    form: bytes | None = None


def score_on_executor(
    shipped: ShippedModel, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    attempt = context.attemptNumber() if context is not None else 0
    try:
        # Loaded once per partition (a partition is large): no cache that outlives the task.
        scorer = _load_scorer(shipped)
        numbered = _numbered(scorer, shipped.run_id, batches, partition << PARTITION_SHIFT)
        if shipped.parts is not None:
            name, read, written, rejected = shipped.parts.write(numbered, attempt)
            yield _result(rows_read=read, part=name, written=written, rejected=rejected)
            return
        for _, scored in numbered:
            rejects = scored.rejects if scored.rejects is not None else _no_rejects()
            output, rejected_rows = _write_ipc(scored.output), _write_ipc(rejects)
            yield _result(output=output, rejects=rejected_rows, rows_read=scored.rows_read)
    except ModelrailError as exc:
        yield _result(error=(type(exc).__name__, exc.message))


def _numbered(
    scorer: BatchScorer, run_id: str, batches: Iterator[pa.RecordBatch], position: int
) -> Iterator[tuple[int, ScoredBatch]]:
    """Each batch scored, with the number of its first row."""
    for batch in batches:
        if ROW_COLUMN in batch.schema.names:
            if batch.num_rows:  # a partition holds consecutive rows of one window
                position = batch.column(ROW_COLUMN)[0].as_py()
            batch = batch.select([name for name in batch.schema.names if name != ROW_COLUMN])
        yield position, scorer.score(batch, position, run_id)
        position += batch.num_rows


def _load_scorer(shipped: ShippedModel) -> BatchScorer:
    from modelrail.registry import loaded_from_bytes
    from modelrail.scoring.forms.record import BATCH, forms_record
    from modelrail.scoring.predictor import ScoringModel, scoring_from_form

    version = shipped.version
    if hashlib.sha256(shipped.artifact).hexdigest() != version.artifact_sha256:
        raise ArtifactIntegrityError(
            f"the artifact of {version.reference} shipped to a Spark executor does not match "
            "its sha256: refusing to score with it"
        )

    def library() -> ScoringModel:
        return ScoringModel(loaded_from_bytes(version, shipped.artifact), BATCH)

    record = forms_record(version)
    chosen = None if record is None else record.chosen_for(BATCH)
    if chosen is not None and shipped.form is not None:
        if hashlib.sha256(shipped.form).hexdigest() != chosen.sha256:
            raise ArtifactIntegrityError(
                f"the {chosen.kind} form of {version.reference} shipped to a Spark executor "
                "does not match its sha256: refusing to score with it"
            )
        scoring = scoring_from_form(version, chosen, shipped.form, BATCH, library)
    else:
        scoring = library()
    return BatchScorer(scoring, shipped.id_fields, on_bad_rows=shipped.on_bad_rows)  # type: ignore[arg-type]


def _result(
    *,
    output: bytes = b"",
    rejects: bytes = b"",
    rows_read: int = 0,
    part: str | None = None,
    written: int = 0,
    rejected: int = 0,
    error: tuple[str, str] = ("", ""),
) -> pa.RecordBatch:
    values = [output, rejects, rows_read, part, written, rejected, *error]
    return pa.RecordBatch.from_pydict(
        {field.name: [value] for field, value in zip(_RESULT_FIELDS, values, strict=True)},
        schema=_RESULT_FIELDS,
    )


def _no_rejects() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=REJECT_SCHEMA)


def _write_ipc(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())

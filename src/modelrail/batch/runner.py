"""Run a batch job: resolve the model once, stream the input through it, write the output
exactly once, and keep a record of the run in the store.

The reference (``pets@prod``) is resolved when the run starts and the version is stored
with the run, so a promotion during a run (or before a resume) cannot mix versions. While
a run works, a thread beats its record every few seconds; a ``running`` record whose beat
stopped belongs to a killed process and may be resumed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa
from threadpoolctl import threadpool_limits

from modelrail.batch.heartbeat import (
    STALE_AFTER_SECONDS,
    Heartbeat,
    committed_record,
    mark_replaced,
    replacing_run,
    supersede_dead_runs,
)
from modelrail.batch.records import BatchRecords, for_the_record, with_secrets
from modelrail.batch.scorer import BatchScorer, RunStamp, ScoredBatch
from modelrail.batch.sinks import Checkpoint, Sink, Writer, open_sink
from modelrail.batch.spec import JobSpec
from modelrail.batch.stages import Stage
from modelrail.entities import BatchRun, ModelVersion
from modelrail.errors import BatchInputError, BatchRunStateError, ModelrailError
from modelrail.refs import Ref
from modelrail.scoring.forms.record import BATCH
from modelrail.scoring.predictor import scoring_model_for
from modelrail.urls import hide_password

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.batch.host import BatchHost
    from modelrail.batch.prediction_log import BatchLog
    from modelrail.batch.sources import Source
    from modelrail.monitoring.batch_profiles import BatchProfiling

Progress = Callable[[int, int | None], None]
Pipeline = Stage[ScoredBatch] | Generator[ScoredBatch, None, None]
log = logging.getLogger("modelrail.batch")

_ARROW_INPUT_TYPES = {"float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}


@dataclass(frozen=True)
class _Plan:
    spec: JobSpec
    version: ModelVersion
    scorer: BatchScorer
    source: Source
    sink: Sink
    artifacts: ArtifactStore
    # A fresh run's input, already being decoded and scored while its record is written.
    pipeline: Pipeline | None = None
    # The run's input profile and prediction distribution, from the batches it scores
    # (local engine; Spark's executors see the rows, not this process).
    profiling: BatchProfiling | None = None
    # A sample of the rows scored, in the prediction log (an environment that logs them).
    prediction_log: BatchLog | None = None


def run_batch(
    client: BatchHost,
    spec: JobSpec,
    *,
    job: str | None = None,
    trigger: str = "manual",
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> BatchRun:
    """Score ``spec``'s input with the version ``spec.reference`` names now."""
    ref = Ref.parse(spec.reference)
    repo = client.batch_records
    run_id = uuid.uuid4().hex
    version: ModelVersion | None = None
    try:
        version = client.get_model_version(ref)
        plan = _plan(client, spec, version, run_id)
    except ModelrailError as exc:
        # Recorded too, so a scheduled job that cannot even start shows up as failed.
        now = clock()
        failed = replace(
            _new_record(client, spec, run_id, job, trigger, now),
            model=version.model if version else ref.name,
            version=version.version if version else 0,
            status="failed",
            finished_at=now,
            error=exc.message,
        )
        with contextlib.suppress(ModelrailError):  # the first error is the one to report
            repo.create(failed)
        raise
    if plan.spec.engine == "local" and not _checks_input_first(plan):
        plan = replace(plan, pipeline=_scored_batches(plan, 0, run_id))
    try:
        record = replace(
            _new_record(client, spec, run_id, job, trigger, clock()),
            model=version.model,
            version=version.version,
            input_description=plan.source.description,
            output=plan.sink.location,
        )
        repo.create(record)
        for dead in supersede_dead_runs(repo, plan.sink, record, clock):
            _discard_logged(client, dead, 0)
        try:
            _validate_first(plan)
        except ModelrailError as exc:
            repo.update(record.id, status="failed", finished_at=clock(), error=exc.message)
            plan.source.close()
            plan.sink.close()
            raise
        return _execute(repo, plan, record, None, progress, clock)
    finally:
        if plan.pipeline is not None:
            plan.pipeline.close()  # (already closed when the run got to its end)


def _checks_input_first(plan: _Plan) -> bool:
    return not plan.sink.atomic and plan.spec.on_bad_rows == "fail" and plan.spec.engine == "local"


def _validate_first(plan: _Plan) -> None:
    """An output that keeps what a failed run wrote (Redis) gets the input checked for bad
    rows before the first write, so a bad row still leaves it untouched."""
    if not _checks_input_first(plan):
        return
    row = 0
    for batch in plan.source.batches(plan.spec.batch_rows):
        plan.scorer.validate(batch, row)
        row += batch.num_rows


def _new_record(
    client: BatchHost, spec: JobSpec, run_id: str, job: str | None, trigger: str, now: float
) -> BatchRun:
    return BatchRun(
        id=run_id,
        job=job,
        trigger=trigger,
        model="",
        version=0,
        reference=spec.reference,
        engine=spec.engine,
        spec=for_the_record(spec).to_json(),
        status="running",
        input_fingerprint="",
        input_description="-",
        output=hide_password(spec.output),
        rows_read=0,
        rows_written=0,
        rows_rejected=0,
        checkpoint=None,
        user=client.user,
        host=socket.gethostname(),
        pid=os.getpid(),
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        error=None,
    )


def resume_batch(
    client: BatchHost,
    run_id: str,
    *,
    output: str | None = None,
    query_url: str | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> BatchRun:
    """Finish a killed or failed run with the version it started with. ``output`` and
    ``query_url`` give again a URL whose password the record does not keep."""
    repo = client.batch_records
    record = repo.get(run_id)
    if record.status == "succeeded":
        raise BatchRunStateError(f"batch run {record.id[:12]} has already succeeded")
    if record.input_description == "-":
        raise BatchRunStateError(
            f"batch run {record.id[:12]} failed before it started ({record.error}): "
            "fix that and run the job again"
        )
    if record.status == "running" and not record.is_stale(clock(), STALE_AFTER_SECONDS):
        raise BatchRunStateError(
            f"batch run {record.id[:12]} is still running (pid {record.pid} on {record.host}, "
            f"last seen {clock() - record.heartbeat_at:.0f} s ago)"
        )
    _refuse_if_replaced(repo, record)
    spec = with_secrets(
        JobSpec.from_json(record.spec), record.id, output=output, query_url=query_url
    )
    version = client.get_model_version(Ref(record.model, version=record.version))
    plan = _plan(client, spec, version, record.id)
    committed = plan.sink.committed(record.id)
    if committed is not None:  # killed after its commit, before its record said so
        try:
            fingerprint = record.input_fingerprint or plan.source.fingerprint()
        finally:
            plan.source.close()
            plan.sink.close()
        repo.update(record.id, **committed_record(record, committed, fingerprint))
        return repo.get(record.id)
    checkpoint = None
    # Spark may split the input differently next time: its runs start over on resume.
    if plan.sink.resumable and record.checkpoint and spec.engine == "local":
        checkpoint = Checkpoint.from_dict(orjson.loads(record.checkpoint))
    if record.input_fingerprint and plan.source.fingerprint() != record.input_fingerprint:
        raise BatchInputError(
            f"the input of batch run {record.id[:12]} ({record.input_description}) has changed "
            "since it started: start a new run instead of resuming this one"
        )
    _discard_logged(client, record, 0 if checkpoint is None else checkpoint.next_row)
    repo.update(record.id, status="running", heartbeat_at=clock(), error=None, pid=os.getpid())
    return _execute(repo, plan, record, checkpoint, progress, clock)


def _discard_logged(client: BatchHost, record: BatchRun, first_row: int) -> None:
    """Remove what ``record`` logged of the rows from ``first_row`` on: they are scored
    (and logged) again, by a resumed run or by the run that replaces it."""
    from modelrail.batch.prediction_log import discard_after

    try:
        folder = client.settings.monitoring_folder
        discard_after(folder, record.model, record.id, first_row, since=record.started_at)
    except Exception:  # the monitoring folder unreachable: logging never fails a run
        log.exception("modelrail: could not remove the prediction log of batch run %s", record.id)


def _refuse_if_replaced(repo: BatchRecords, record: BatchRun) -> None:
    """A run that a later run of the same output and input has replaced must not be
    resumed: it would overwrite newer predictions with older ones."""
    newer = replacing_run(repo, record)
    if newer is None:
        return
    if record.status == "running":  # (and its lease has run out)
        mark_replaced(repo, record, newer)
    raise BatchRunStateError(
        f"batch run {record.id[:12]} was replaced by batch run {newer.id[:12]}, which "
        "has succeeded since: resuming would overwrite its rows; run the job again"
    )


def _plan(client: BatchHost, spec: JobSpec, version: ModelVersion, run_id: str) -> _Plan:
    from modelrail.batch.sources import open_source
    from modelrail.object_store import is_object_store

    root = client.settings.project_root
    # Relative inputs, like relative outputs, are relative to the project (the command line
    # makes the paths it is given absolute first, so there they follow the working folder).
    spec = replace(
        spec,
        inputs=tuple(path if is_object_store(path) else str(root / path) for path in spec.inputs),
    )

    # The form chosen for large batches at registration (sha256-checked), else the model.
    model = scoring_model_for(client.artifacts, version, BATCH)
    inputs = [c for c in model.columns if c not in spec.id_columns]
    types = {
        c.name: _ARROW_INPUT_TYPES[c.dtype]
        for c in version.signature.inputs
        if c.dtype in _ARROW_INPUT_TYPES
    }
    source = open_source(spec, columns=[*spec.id_columns, *inputs], column_types=types)
    try:
        id_fields = tuple(source.schema.field(c) for c in spec.id_columns)
        scorer = BatchScorer(model, id_fields, on_bad_rows=spec.on_bad_rows)
        sink = open_sink(spec, client.settings.project_root)
        sink.prepare(scorer.output_schema, spec.id_columns, spec.on_bad_rows == "skip")
    except BaseException:
        source.close()
        raise
    profiling = None
    if spec.engine == "local":
        from modelrail.monitoring.batch_profiles import BatchProfiling

        prediction = scorer.prediction_columns()[0]
        profiling = BatchProfiling(version.signature, inputs, prediction)
    from modelrail.batch.prediction_log import open_batch_log

    logged = open_batch_log(client, spec, version, scorer, run_id)
    return _Plan(
        spec,
        version,
        scorer,
        source,
        sink,
        client.artifacts,
        profiling=profiling,
        prediction_log=logged,
    )


def _execute(
    repo: BatchRecords,
    plan: _Plan,
    record: BatchRun,
    checkpoint: Checkpoint | None,
    progress: Progress | None,
    clock: Callable[[], float],
) -> BatchRun:
    stamp = RunStamp(plan.version.model, plan.version.version, record.id)
    done = checkpoint or Checkpoint()
    beat = Heartbeat(repo, record.id, plan.source, clock)
    writer: Writer | None = None
    pipeline: Pipeline | None = None
    try:
        writer = plan.sink.open(stamp, checkpoint)
        beat.start()
        row = done.next_row
        written, rejected = done.rows_written, done.rows_rejected
        saved_parts = writer.parts_done()
        if plan.profiling is not None:
            plan.profiling.first_row = row
        pipeline = _scored_batches(plan, row, record.id, writer)
        for scored in pipeline:
            writer.write(scored, clock())
            if plan.profiling is not None:
                plan.profiling.add_output(scored.output)
            row += scored.rows_read
            written += scored.rows_written
            rejected += scored.rows_rejected
            # A checkpoint as soon as a part is closed: all rows read so far are in it.
            parts = writer.parts_done()
            if plan.prediction_log is not None:
                checkpoint_due = parts is not None and parts != saved_parts
                plan.prediction_log.written(row, checkpoint=checkpoint_due)
            if parts is not None and parts != saved_parts:
                state = Checkpoint(row, parts, written, rejected).to_dict()
                repo.update(record.id, checkpoint=orjson.dumps(state).decode(), rows_read=row)
                saved_parts = parts
            if progress is not None:
                progress(row, plan.source.total_rows)
        fingerprint = plan.source.fingerprint()
        writer.commit(fingerprint)
        if plan.prediction_log is not None:
            plan.prediction_log.close()
    except BaseException as exc:
        beat.stop()
        if writer is not None:
            writer.abort()
        message = exc.message if isinstance(exc, ModelrailError) else _describe(exc)
        repo.update(record.id, status="failed", finished_at=clock(), error=message, checkpoint=None)
        raise
    finally:
        if pipeline is not None:
            pipeline.close()  # its threads stop, whatever ended the run
        beat.stop()
        plan.source.close()
        plan.sink.close()
    repo.update(
        record.id,
        status="succeeded",
        input_fingerprint=fingerprint,
        rows_read=row,
        rows_written=written,
        rows_rejected=rejected,
        finished_at=clock(),
        heartbeat_at=clock(),
        checkpoint=None,
        error=None,
        profile=None if plan.profiling is None else plan.profiling.to_text(),
    )
    return repo.get(record.id)


def _scored_batches(plan: _Plan, row: int, run_id: str, writer: Writer | None = None) -> Pipeline:
    if plan.pipeline is not None and row == 0:
        return plan.pipeline
    if plan.spec.engine == "spark":
        from modelrail.batch.spark import spark_scored_batches

        return spark_scored_batches(
            plan.spec, plan.source, plan.version, plan.artifacts, plan.scorer, run_id, writer
        )
    # Three stages on their own threads: decoding the input, scoring it, writing the output
    # (the caller's). Decoding is the longest, so it gets a thread to itself.
    batches = plan.source.batches(
        plan.spec.batch_rows, start_row=row, parallel=plan.sink.outpaces_decoding
    )
    return Stage(_scored(plan, Stage(batches, "batch-reader", 1), row, run_id), "batch-scorer")


def _scored(
    plan: _Plan, batches: Stage[pa.RecordBatch], row: int, run_id: str
) -> Iterator[ScoredBatch]:
    # One BLAS thread (a second only waited for the busy other core: each product took 7x
    # longer); a compiled model multiplies no matrix (BatchScorer._predict), so needs no limit.
    compiled = plan.scorer.model.compiled is not None
    limits = contextlib.nullcontext() if compiled else threadpool_limits(1, user_api="blas")
    with batches, limits:
        for batch in batches:
            if plan.profiling is not None:
                plan.profiling.add_input(batch)
            scored = plan.scorer.score(batch, row, run_id)
            if plan.prediction_log is not None:
                plan.prediction_log.add(batch, scored, row)
            row += scored.rows_read
            yield scored


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C); nothing of this run was kept"
    return f"{type(exc).__name__}: {exc}"

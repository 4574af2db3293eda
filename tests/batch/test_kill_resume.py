"""Batch runs killed with SIGKILL, then resumed (``modelrail batch resume RUN``) or simply run
again: afterwards every input row is in the output exactly once, all from one model version,
and a database output never showed anything of the killed run.

The killed runs are real processes. Most are forked from a fork server that has imported
modelrail and scikit-learn once (a fresh interpreter spends seconds on those imports); their
progress callback stops after a chosen batch, so the kill lands at a known point: after the
first batch, in the middle, after the last batch (before the commit). Other kill points are
named (``KILL_AT``): the run is killed as its output commits but before its record says so,
or, for Parquet, just before or just after the rename that publishes its partition. One test
kills ``modelrail batch run`` itself, at whatever batch it has reached. A killed run's
heartbeat is made old by writing its record, instead of waiting the 30 seconds after which a
silent run counts as dead.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest

from modelrail.batch import prediction_log
from modelrail.batch.heartbeat import HEARTBEAT_SECONDS, STALE_AFTER_SECONDS
from modelrail.batch.runner import resume_batch, run_batch
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import BatchRun
from modelrail.errors import BatchInputError, BatchRunStateError
from modelrail.monitoring.logfiles import read_predictions
from modelrail.store.batch_runs_repo import BatchRunRepository
from tests.batch.conftest import (
    BINARY,
    OUTPUT_KINDS,
    ROWS,
    Models,
    Output,
    ParquetOutput,
    PostgresOutput,
    RedisOutput,
    ScoringProject,
    SQLiteOutput,
    by_id,
    expected_predictions,
    input_frame,
    make_output,
    modelrail_cli,
    open_project,
)

BATCH_ROWS = 20  # 300 rows: 15 batches (and, for Parquet, 15 parts unless a test says otherwise)
BATCHES = ROWS // BATCH_ROWS
MODELRAIL = str(Path(sys.executable).with_name("modelrail"))
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["skops.io", "sklearn.linear_model", "modelrail.registry", __name__])


# -- the process that gets killed --------------------------------------------------------------


def _doomed_run(
    root: str,
    spec_json: str,
    stall_after: int,
    kill_at: str | None,
    events: Connection,
    log_file_rows: int | None = None,
) -> None:
    """Runs in the killed process: run_batch, stopping for good after batch ``stall_after``,
    or killing itself at the point ``kill_at`` names (``KILL_AT``); ``log_file_rows``: rows
    per prediction log file, so a small run writes several."""
    if log_file_rows is not None:
        prediction_log.FILE_ROWS = log_file_rows  # in this process only

    def progress(rows: int, total: int | None) -> None:
        progress.batches += 1  # type: ignore[attr-defined]
        if progress.batches == stall_after:  # type: ignore[attr-defined]
            events.send(("stalled", rows))
            time.sleep(600)

    progress.batches = 0  # type: ignore[attr-defined]
    if kill_at is not None:
        KILL_AT[kill_at](lambda: events.send((kill_at, 0)))
    settings = load_settings(cwd=Path(root), environ={}, create=False)
    with Client(settings=settings, user="doomed") as client:
        record = run_batch(client, JobSpec.from_json(spec_json), progress=progress)
    events.send(("finished", record.rows_written))


def _die(say: Callable[[], None]) -> None:
    say()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_when_committed(say: Callable[[], None]) -> None:
    """The output has committed; the record is about to say so."""
    update = BatchRunRepository.update

    def dying_update(self: BatchRunRepository, run_id: str, **values: Any) -> None:
        if values.get("status") == "succeeded":
            _die(say)
        update(self, run_id, **values)

    BatchRunRepository.update = dying_update  # type: ignore[method-assign]  # this process only


def _kill_at_publishing(*, after: bool) -> Callable[[Callable[[], None]], None]:
    """The rename that makes a Parquet partition's new files what readers see."""

    def patch(say: Callable[[], None]) -> None:
        rename = os.replace

        def dying_rename(source: Any, target: Any, **kwargs: Any) -> None:
            publishing = Path(target).name.startswith("input=")
            if publishing and not after:
                _die(say)
            rename(source, target, **kwargs)
            if publishing:
                _die(say)

        os.replace = dying_rename  # in this process only

    return patch


KILL_AT: dict[str, Callable[[Callable[[], None]], None]] = {
    "committed": _kill_when_committed,
    "before publishing": _kill_at_publishing(after=False),
    "after publishing": _kill_at_publishing(after=True),
}


@contextmanager
def stalled_run(
    scoring: ScoringProject,
    spec: JobSpec,
    stall_after: int = 0,
    kill_at: str | None = None,
    log_file_rows: int | None = None,
) -> Iterator[BatchRun]:
    """``spec`` running in another process, stopped at the chosen point; SIGKILLed on exit."""
    receive, send = _FORKS.Pipe(duplex=False)
    arguments = (str(scoring.root), spec.to_json(), stall_after, kill_at, send, log_file_rows)
    process = _FORKS.Process(target=_doomed_run, args=arguments)
    process.start()
    send.close()
    try:
        assert receive.poll(60), "the run did not reach the kill point within 60 s"
        event, _ = receive.recv()
        assert event in ("stalled", *KILL_AT), event
        repo = BatchRunRepository(scoring.client.db)
        (record,) = repo.recent(status="running")
        deadline = time.monotonic() + 20
        while not record.input_fingerprint and time.monotonic() < deadline:
            time.sleep(0.02)  # the fingerprint is recorded by a thread of the run
            record = repo.get(record.id)
        yield record
    finally:
        process.kill()
        process.join(20)
        receive.close()
    assert process.exitcode == -signal.SIGKILL


def kill_during_run(
    scoring: ScoringProject,
    spec: JobSpec,
    stall_after: int = 0,
    kill_at: str | None = None,
    log_file_rows: int | None = None,
) -> BatchRun:
    """Start ``spec`` in another process, SIGKILL it at the chosen point; its run record."""
    with stalled_run(scoring, spec, stall_after, kill_at, log_file_rows) as record:
        if stall_after:  # alive, beating: not resumable yet
            with pytest.raises(BatchRunStateError, match="is still running"):
                resume_batch(scoring.client, record.id)
    return BatchRunRepository(scoring.client.db).get(record.id)


def make_stale(scoring: ScoringProject, run_id: str) -> None:
    """What 30 s without a heartbeat looks like in the store."""
    old = time.time() - STALE_AFTER_SECONDS - 5
    BatchRunRepository(scoring.client.db).update(run_id, heartbeat_at=old)


def parquet_job(scoring: ScoringProject) -> tuple[ParquetOutput, JobSpec]:
    """A Parquet output, and the job scoring the input into it a part file per batch."""
    output = ParquetOutput(scoring.root)
    return output, scoring.spec(output, batch_rows=BATCH_ROWS, part_rows=BATCH_ROWS)


def checkpoint_rows(record: BatchRun) -> int:
    return int(orjson.loads(record.checkpoint)["next_row"]) if record.checkpoint else 0


# -- checks ----------------------------------------------------------------------------------


def assert_exactly_once(
    scoring: ScoringProject,
    output: Output,
    run_id: str,
    version: int,
    frame: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """One row per row of ``frame`` (the input by default), all scored by run ``run_id``."""
    rows = output.rows()
    keyed = by_id(rows)  # fails on a duplicate id
    model = scoring.models.binary_v1 if version == 1 else scoring.models.binary_v2
    scored = scoring.frame if frame is None else frame
    expected = {str(k): v for k, v in expected_predictions(model, scored).items()}
    assert {k: r["prediction"] for k, r in keyed.items()} == expected
    assert {(r["model_version"], r["batch_run_id"]) for r in rows} == {(version, run_id)}
    return rows


def assert_nothing_of_the_killed_run_is_visible(output: Output, record: BatchRun) -> None:
    if isinstance(output, SQLiteOutput | PostgresOutput | ParquetOutput):
        assert output.rows() == []
    if isinstance(output, ParquetOutput):
        assert output.unpublished() == [f".runs/{record.id}"]
    if isinstance(output, RedisOutput):
        # each batch is one MULTI/EXEC: whole batches only, those of the checkpoint
        assert len(output.rows()) == checkpoint_rows(record)


@pytest.fixture
def killable(tmp_path: Path, batch_models: Models) -> Iterator[ScoringProject]:
    project = open_project(tmp_path, batch_models)
    project.client.promote(f"{BINARY}:1", to="staging", force=True, reason="batch test")
    yield project
    project.client.close()


KILL_POINTS = {"after the first batch": 1, "midway": 8, "after the last batch": BATCHES}


@pytest.mark.parametrize("point", list(KILL_POINTS))
@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_killed_run_resumes_with_its_version_to_one_row_per_input_row(
    killable: ScoringProject, kind: str, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = killable
    output = make_output(kind, scoring.root)
    try:
        spec = scoring.spec(
            output, reference=f"{BINARY}@staging", batch_rows=BATCH_ROWS, part_rows=BATCH_ROWS
        )
        killed = kill_during_run(scoring, spec, KILL_POINTS[point])
        assert (killed.status, killed.version) == ("running", 1)
        resumable = isinstance(output, ParquetOutput | RedisOutput)
        assert checkpoint_rows(killed) == (KILL_POINTS[point] * BATCH_ROWS if resumable else 0)
        assert_nothing_of_the_killed_run_is_visible(output, killed)

        # prod moves on meanwhile: the resumed run still scores with version 1
        scoring.client.promote(f"{BINARY}:2", to="staging", force=True, reason="newer")
        make_stale(scoring, killed.id)
        resumed_at = time.time()
        done = modelrail_cli(monkeypatch, scoring.root, "batch", "resume", killed.id[:10])
        assert done.code == 0, done.stderr
        assert f"batch run {killed.id[:12]} succeeded: {BINARY} 1 ({BINARY}@staging)" in (
            done.stdout
        )
        rows = assert_exactly_once(scoring, output, killed.id, version=1)
        kept = [r for r in rows if r["scored_at"] < resumed_at]
        assert len(kept) == checkpoint_rows(killed)  # resumable outputs continue; SQL restarts
        record = BatchRunRepository(scoring.client.db).get(killed.id)
        assert (record.status, record.rows_read, record.rows_written, record.version) == (
            "succeeded",
            ROWS,
            ROWS,
            1,
        )
        if isinstance(output, ParquetOutput):
            assert output.unpublished() == []
        with pytest.raises(BatchRunStateError, match="has already succeeded"):
            resume_batch(scoring.client, killed.id)
    finally:
        output.close()


@pytest.fixture
def logging_killable(tmp_path: Path, batch_models: Models) -> Iterator[ScoringProject]:
    """A project whose staging logs every row a batch run scores."""
    init_project(tmp_path)
    with (tmp_path / "modelrail.toml").open("a") as config:
        config.write("\n[environments.staging.monitoring]\nlog_predictions = 1.0\n")
    project = open_project(tmp_path, batch_models)
    project.client.promote(f"{BINARY}:1", to="staging", force=True, reason="batch test")
    yield project
    project.client.close()


@pytest.mark.parametrize("again", ["resumed", "run again"])
@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_a_killed_run_finished_again_logs_each_row_once(
    logging_killable: ScoringProject, kind: str, again: str
) -> None:
    # Parquet resumes after its last checkpoint (every 5 batches here), SQLite starts over;
    # the killed process has logged files beyond the checkpoint by then (a file per batch).
    scoring = logging_killable
    output = make_output(kind, scoring.root)
    spec = scoring.spec(
        output, reference=f"{BINARY}@staging", batch_rows=BATCH_ROWS, part_rows=5 * BATCH_ROWS
    )
    killed = kill_during_run(scoring, spec, 8, log_file_rows=BATCH_ROWS // 2)
    logs = Path(scoring.client.settings.monitoring_folder)
    before = read_predictions(logs, BINARY).column("request_id").to_pylist()
    assert len(before) >= 7 * BATCH_ROWS  # logged up to the kill, past the checkpoint
    assert checkpoint_rows(killed) == (5 * BATCH_ROWS if kind == "parquet" else 0)
    make_stale(scoring, killed.id)
    if again == "resumed":
        resume_batch(scoring.client, killed.id)
    else:
        run_batch(scoring.client, spec)
    logged = read_predictions(logs, BINARY).column("request_id").to_pylist()
    assert sorted(logged) == sorted(str(i) for i in scoring.frame["id"])  # each once
    assert len(by_id(output.rows())) == ROWS


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_running_again_after_a_kill_supersedes_the_dead_run(
    killable: ScoringProject, kind: str
) -> None:
    scoring = killable
    output = make_output(kind, scoring.root)
    try:
        spec = scoring.spec(
            output, reference=f"{BINARY}@staging", batch_rows=BATCH_ROWS, part_rows=BATCH_ROWS
        )
        killed = kill_during_run(scoring, spec, 8)
        assert_nothing_of_the_killed_run_is_visible(output, killed)
        scoring.client.promote(f"{BINARY}:2", to="staging", force=True, reason="newer")
        make_stale(scoring, killed.id)
        again = run_batch(scoring.client, spec)
        assert (again.status, again.version) == ("succeeded", 2)
        assert_exactly_once(scoring, output, again.id, version=2)
        dead = BatchRunRepository(scoring.client.db).get(killed.id)
        assert dead.status == "failed" and dead.finished_at is not None
        assert dead.error == f"interrupted; superseded by batch run {again.id[:12]}"
        if isinstance(output, ParquetOutput):
            assert output.unpublished() == []  # the dead run's staging is gone
        with pytest.raises(BatchRunStateError):
            resume_batch(scoring.client, again.id)
    finally:
        output.close()


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_run_killed_after_its_output_committed_is_finished_by_resume_as_it_was(
    killable: ScoringProject, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = killable
    output = make_output(kind, scoring.root)
    try:
        bad = scoring.frame.copy()
        bad.loc[[5, 200], "f1"] = float("nan")
        kept = bad.drop(index=[5, 200])
        spec = scoring.spec(
            output,
            inputs=(scoring.parquet("bad.parquet", bad),),
            on_bad_rows="skip",
            batch_rows=BATCH_ROWS,
            part_rows=BATCH_ROWS,
        )
        killed = kill_during_run(scoring, spec, kill_at="committed")
        assert killed.status == "running"
        assert_exactly_once(scoring, output, killed.id, version=1, frame=kept)  # committed
        make_stale(scoring, killed.id)
        resumed_at = time.time()
        done = modelrail_cli(monkeypatch, scoring.root, "batch", "resume", killed.id[:10])
        assert done.code == 0, done.stderr
        assert f"batch run {killed.id[:12]} succeeded: {BINARY} 1" in done.stdout
        assert f"scored {ROWS} rows, wrote {ROWS - 2}, 2 rejected" in done.stdout
        rows = assert_exactly_once(scoring, output, killed.id, version=1, frame=kept)
        assert max(r["scored_at"] for r in rows) < resumed_at  # kept as committed, not redone
        assert sorted(r["row_number"] for r in output.rejects()) == [5, 200]
        record = BatchRunRepository(scoring.client.db).get(killed.id)
        assert (record.status, record.error, record.checkpoint) == ("succeeded", None, None)
        assert (record.rows_read, record.rows_written, record.rows_rejected) == (ROWS, ROWS - 2, 2)
        assert record.input_fingerprint and record.finished_at is not None
        if isinstance(output, ParquetOutput):
            assert output.unpublished() == []
    finally:
        output.close()


@pytest.mark.parametrize("kind", ["sqlite", "parquet"])
def test_running_again_after_a_kill_after_the_commit_records_the_dead_run_as_succeeded(
    killable: ScoringProject, kind: str
) -> None:
    scoring = killable
    output = make_output(kind, scoring.root)
    spec = scoring.spec(output, batch_rows=BATCH_ROWS, part_rows=BATCH_ROWS)
    killed = kill_during_run(scoring, spec, kill_at="committed")
    make_stale(scoring, killed.id)
    again = run_batch(scoring.client, spec.with_reference(f"{BINARY}:2"))
    assert again.status == "succeeded"
    assert_exactly_once(scoring, output, again.id, version=2)
    dead = BatchRunRepository(scoring.client.db).get(killed.id)
    assert (dead.status, dead.error, dead.rows_written) == ("succeeded", None, ROWS)
    if isinstance(output, ParquetOutput):
        assert output.unpublished() == []


@pytest.mark.parametrize("then", ["resume", "run again"])
@pytest.mark.parametrize("point", ["before publishing", "after publishing"])
def test_readers_see_the_old_or_the_new_partition_whenever_publishing_is_killed(
    killable: ScoringProject, point: str, then: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = killable
    output, spec = parquet_job(scoring)
    earlier = scoring.run(spec.with_reference(f"{BINARY}:2"))
    killed = kill_during_run(scoring, spec, kill_at=point)
    seen = earlier if point == "before publishing" else killed
    assert_exactly_once(scoring, output, seen.id, version=seen.version)
    assert len(pd.read_parquet(output.folder)) == ROWS  # readers that know nothing of modelrail
    make_stale(scoring, killed.id)
    if then == "resume":
        done = modelrail_cli(monkeypatch, scoring.root, "batch", "resume", killed.id)
        assert done.code == 0, done.stderr
        final = killed.id
    else:
        final = run_batch(scoring.client, spec).id
    assert_exactly_once(scoring, output, final, version=1)
    assert output.unpublished() == []
    repo = BatchRunRepository(scoring.client.db)
    dead = repo.get(killed.id)
    if then == "run again" and point == "before publishing":
        superseded = f"interrupted; superseded by batch run {final[:12]}"
        assert (dead.status, dead.error) == ("failed", superseded)
    else:  # its partition was published: the record says so
        assert (dead.status, dead.rows_written) == ("succeeded", ROWS)


def test_a_plain_partition_folder_of_modelrail_0_1_is_replaced_by_a_link_to_new_files(
    killable: ScoringProject,
) -> None:
    """Folders written by modelrail 0.1 hold each partition as a plain folder."""
    scoring = killable
    output, spec = parquet_job(scoring)
    earlier = scoring.run(spec.with_reference(f"{BINARY}:2"))
    (partition,) = output.folder.glob("input=*")
    plain = output.folder / "plain"
    shutil.copytree(partition, plain)  # the files themselves, not the link
    partition.unlink()
    plain.rename(partition)
    assert_exactly_once(scoring, output, earlier.id, version=2)
    again = scoring.run(spec)
    assert_exactly_once(scoring, output, again.id, version=1)
    assert partition.is_symlink() and output.unpublished() == []


def test_parquet_parts_written_after_the_last_checkpoint_are_redone(
    killable: ScoringProject,
) -> None:
    scoring = killable
    output = ParquetOutput(scoring.root)
    killed = kill_during_run(
        scoring, scoring.spec(output, batch_rows=BATCH_ROWS, part_rows=BATCH_ROWS), 8
    )
    staging = output.folder / ".runs" / killed.id
    parts = sorted(staging.glob("part-*.parquet"))
    assert len(parts) == 8 == checkpoint_rows(killed) // BATCH_ROWS
    # what a kill between writing a part and storing its checkpoint leaves behind
    shutil.copyfile(parts[-1], staging / "part-000008.parquet")
    (staging / "part-000009.tmp").write_bytes(b"half a part")
    make_stale(scoring, killed.id)
    assert resume_batch(scoring.client, killed.id).rows_written == ROWS
    assert_exactly_once(scoring, output, killed.id, version=1)


def test_resume_continues_in_the_staging_folder_of_modelrail_0_1(
    killable: ScoringProject,
) -> None:
    scoring = killable
    output, spec = parquet_job(scoring)
    killed = kill_during_run(scoring, spec, 8)
    (output.folder / ".runs" / killed.id).rename(output.folder / f".staging-{killed.id}")
    make_stale(scoring, killed.id)
    assert resume_batch(scoring.client, killed.id).rows_written == ROWS
    assert_exactly_once(scoring, output, killed.id, version=1)
    assert output.unpublished() == []


def test_resume_whose_checkpointed_parts_are_gone_is_refused_and_publishes_nothing(
    killable: ScoringProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = killable
    output, spec = parquet_job(scoring)
    earlier = scoring.run(spec.with_reference(f"{BINARY}:2"))
    killed = kill_during_run(scoring, spec, 8)
    (output.folder / ".runs" / killed.id / "part-000003.parquet").unlink()
    make_stale(scoring, killed.id)
    refused = modelrail_cli(monkeypatch, scoring.root, "batch", "resume", killed.id)
    assert refused.code == 10
    assert "part-000003.parquet is missing (1 of the 8 part files" in refused.stderr
    assert "run the job again" in refused.stderr
    assert_exactly_once(scoring, output, earlier.id, version=2)


def test_parquet_parts_of_several_batches_resume_after_the_last_closed_part(
    killable: ScoringProject,
) -> None:
    scoring = killable
    output = ParquetOutput(scoring.root)
    spec = scoring.spec(output, batch_rows=BATCH_ROWS, part_rows=3 * BATCH_ROWS)
    killed = kill_during_run(scoring, spec, 8)  # 8 batches: 2 closed parts and an open one
    staging = output.folder / ".runs" / killed.id
    assert checkpoint_rows(killed) == 6 * BATCH_ROWS
    assert sorted(p.name for p in staging.glob("part-*")) == [
        "part-000000.parquet",
        "part-000001.parquet",
        "part-000002.tmp",
    ]
    make_stale(scoring, killed.id)
    assert resume_batch(scoring.client, killed.id).rows_written == ROWS
    assert_exactly_once(scoring, output, killed.id, version=1)
    (partition,) = output.folder.glob("input=*")
    parts = sorted(partition.glob("part-*.parquet"))
    assert len(parts) == BATCHES // 3
    assert {pq.ParquetFile(p).metadata.num_row_groups for p in parts} == {3}


def test_a_working_run_beats_its_record_and_is_left_alone(killable: ScoringProject) -> None:
    scoring = killable
    output, spec = parquet_job(scoring)
    repo = BatchRunRepository(scoring.client.db)
    with stalled_run(scoring, spec, 2) as live:
        deadline = time.monotonic() + 4 * HEARTBEAT_SECONDS
        while (beat := repo.get(live.id).heartbeat_at) < live.started_at + HEARTBEAT_SECONDS / 2:
            assert time.monotonic() < deadline, "the heartbeat did not move"
            time.sleep(0.1)
        with pytest.raises(BatchRunStateError, match="is still running"):
            resume_batch(scoring.client, live.id, clock=lambda: beat + STALE_AFTER_SECONDS - 1)
        other = run_batch(scoring.client, spec)  # the same job again, meanwhile
        assert other.status == "succeeded"
        assert repo.get(live.id).status == "running"
        assert f".runs/{live.id}" in output.unpublished()  # its work is not thrown away
    assert_exactly_once(scoring, output, other.id, version=1)


def test_a_run_replaced_while_it_worked_is_marked_failed_once_its_lease_runs_out(
    killable: ScoringProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = killable
    output, spec = parquet_job(scoring)
    repo = BatchRunRepository(scoring.client.db)

    def history(run_id: str) -> str:
        """The line of ``modelrail batch history`` that shows the run."""
        shown = modelrail_cli(monkeypatch, scoring.root, "batch", "history")
        assert shown.code == 0, shown.stderr
        return next(line for line in shown.stdout.splitlines() if run_id[:12] in line)

    with stalled_run(scoring, spec, 2) as live:
        other = run_batch(scoring.client, spec)  # replaces it while it still works
        assert "running" in history(live.id)  # its lease holds: it may yet finish
    make_stale(scoring, live.id)  # killed, and 30 s have passed
    line = history(live.id)
    assert "failed" in line and f"replaced by batch run {other.id[:12]}" in line
    dead = repo.get(live.id)
    assert dead.status == "failed" and dead.finished_at is not None
    assert dead.error is not None and dead.error.startswith(
        f"replaced by batch run {other.id[:12]}, which succeeded since; its process "
        f"(pid {dead.pid} on {dead.host}) stopped at "
    )
    shown = modelrail_cli(monkeypatch, scoring.root, "batch", "show", live.id)
    assert f"replaced by batch run {other.id[:12]}" in shown.stdout
    refused = modelrail_cli(monkeypatch, scoring.root, "batch", "resume", live.id)
    assert refused.code == 2 and "which has succeeded since" in refused.stderr
    assert_exactly_once(scoring, output, other.id, version=1)
    assert output.unpublished() == [f".runs/{live.id}"]
    again = run_batch(scoring.client, spec)  # the next run into the folder tidies it
    assert output.unpublished() == [] and repo.get(live.id).error == dead.error
    assert_exactly_once(scoring, output, again.id, version=1)


def test_resume_refuses_an_input_that_changed_since_the_run_started(
    killable: ScoringProject,
) -> None:
    scoring = killable
    output = ParquetOutput(scoring.root)
    path = Path(scoring.parquet())
    spec = scoring.spec(output, inputs=(str(path),), batch_rows=BATCH_ROWS, part_rows=BATCH_ROWS)
    killed = kill_during_run(scoring, spec, 5)
    original = path.read_bytes()
    scoring.parquet(frame=scoring.frame.assign(f0=scoring.frame["f0"] + 1))
    make_stale(scoring, killed.id)
    with pytest.raises(BatchInputError, match="has changed since it started"):
        resume_batch(scoring.client, killed.id)
    path.write_bytes(original)
    make_stale(scoring, killed.id)
    resumed = resume_batch(scoring.client, killed.id)
    assert resumed.status == "succeeded"
    assert_exactly_once(scoring, output, killed.id, version=1)


def test_resume_of_a_succeeded_run_is_refused(killable: ScoringProject) -> None:
    done = killable.run(killable.spec(SQLiteOutput(killable.root)))
    with pytest.raises(BatchRunStateError, match=f"batch run {done.id[:12]} has already succeeded"):
        resume_batch(killable.client, done.id)


def test_modelrail_batch_run_killed_by_sigkill_resumes_after_its_last_batch(
    killable: ScoringProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = killable
    rows = 40_000
    frame = input_frame(rows)
    path = scoring.parquet("large.parquet", frame)
    output = ParquetOutput(scoring.root)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    command = [MODELRAIL, "batch", "run", f"{BINARY}@staging", "--input", path]
    command += [
        "--output",
        output.url,
        "--id-column",
        "id",
        "--batch-rows",
        "50",
        "--part-rows",
        "50",
    ]
    child = subprocess.Popen(
        command,
        cwd=scoring.root,
        env=clean,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    repo = BatchRunRepository(scoring.client.db)
    try:
        deadline = time.monotonic() + 60
        killed: BatchRun | None = None
        while killed is None or killed.rows_read < 2_000:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "no progress within 60 s"
            time.sleep(0.01)
            running = repo.recent(status="running")
            killed = running[0] if running else None
        child.send_signal(signal.SIGKILL)
        child.wait(20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(20)
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    killed = repo.get(killed.id)
    assert killed.status == "running" and 2_000 <= checkpoint_rows(killed) < rows
    assert output.rows() == []
    make_stale(scoring, killed.id)
    resumed_at = time.time()
    done = modelrail_cli(monkeypatch, scoring.root, "batch", "resume", killed.id)
    assert done.code == 0, done.stderr
    written = output.rows()
    keyed = by_id(written)
    assert sorted(int(k) for k in keyed) == frame["id"].tolist()
    assert {(r["model_version"], r["batch_run_id"]) for r in written} == {(1, killed.id)}
    assert sum(r["scored_at"] < resumed_at for r in written) == checkpoint_rows(killed)
    assert repo.get(killed.id).rows_written == rows

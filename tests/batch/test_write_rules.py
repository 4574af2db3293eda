"""Rules that keep an output right beyond one run: a bad row never half-writes even a
non-transactional output, an id the input repeats is refused by the SQL outputs, and a run
that a later run replaced cannot be resumed over it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modelrail.batch.runner import resume_batch
from modelrail.errors import BatchInputError, BatchOutputError, BatchRunStateError
from modelrail.store.batch_runs_repo import BatchRunRepository
from tests.batch.conftest import (
    ParquetOutput,
    PostgresOutput,
    RedisOutput,
    ScoringProject,
    SQLiteOutput,
    make_output,
)


@pytest.fixture
def redis_output() -> Iterator[RedisOutput]:
    output = RedisOutput()
    yield output
    output.close()


def test_a_bad_row_late_in_the_input_leaves_redis_untouched(
    scoring: ScoringProject, redis_output: RedisOutput
) -> None:
    frame = scoring.frame.copy()
    frame.loc[len(frame) - 5, "f3"] = np.nan  # in the last batch: earlier ones would be written
    spec = scoring.spec(redis_output, inputs=(scoring.parquet("late.parquet", frame),))
    with pytest.raises(BatchInputError, match="'f3'"):
        scoring.run(replace(spec, batch_rows=50))
    assert redis_output.keys() == []
    (failed,) = BatchRunRepository(scoring.client.db).recent()
    assert failed.status == "failed" and "'f3'" in (failed.error or "")


def pipeline_threads() -> list[str]:
    names = [t.name for t in threading.enumerate()]
    return [name for name in names if name.startswith(("batch-reader", "batch-scorer"))]


def test_a_run_into_parquet_that_fails_late_leaves_no_rows_and_no_reading_threads(
    scoring: ScoringProject,
) -> None:
    """A Parquet output has its input decoded on two threads: both stop with the run."""
    output = ParquetOutput(scoring.root)
    frame = scoring.frame.copy()
    frame.loc[len(frame) - 5, "f3"] = np.nan
    spec = scoring.spec(output, inputs=(scoring.parquet("late.parquet", frame),), batch_rows=50)
    with pytest.raises(BatchInputError, match="'f3'"):
        scoring.run(spec)
    assert not pipeline_threads()
    assert output.rows() == [] and output.unpublished() == []


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("batch_rows", [1000, 50], ids=["same-batch", "earlier-batch"])
def test_an_id_the_input_repeats_is_refused_and_nothing_is_written(
    scoring: ScoringProject, tmp_path: Path, kind: str, batch_rows: int
) -> None:
    output = make_output(kind, tmp_path)
    try:
        first = scoring.run(scoring.spec(output))  # the table holds rows of an earlier run
        frame = scoring.frame.copy()
        frame.loc[250, "id"] = frame.loc[10, "id"]
        twice = scoring.parquet("twice.parquet", frame)
        spec = scoring.spec(output, inputs=(twice,), batch_rows=batch_rows)
        with pytest.raises(BatchOutputError, match=r"unique|duplicate|twice"):
            scoring.run(spec)
        # the failed run's reading and scoring threads are gone with it
        assert not pipeline_threads()
        rows = output.rows()
        assert len(rows) == len(scoring.frame)
        assert {row["batch_run_id"] for row in rows} == {first.id}
    finally:
        output.close()


@pytest.mark.postgres
def test_a_table_the_run_would_create_is_not_left_behind_when_the_run_fails(
    scoring: ScoringProject, tmp_path: Path
) -> None:
    output = PostgresOutput()
    try:
        frame = scoring.frame.copy()
        frame.loc[250, "id"] = frame.loc[10, "id"]
        spec = scoring.spec(output, inputs=(scoring.parquet("twice.parquet", frame),))
        with pytest.raises(BatchOutputError, match=r"duplicate|twice|unique"):
            scoring.run(spec)
        assert not output.has_table("scores")

        # the same job on good input creates the table, keyed on the id column
        scoring.run(scoring.spec(output))
        assert len(output.rows()) == len(scoring.frame)
        keys = output.query(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
            (output.table,),
        )
        assert [k["attname"] for k in keys] == ["id"]
    finally:
        output.close()


def test_a_superseded_run_cannot_be_resumed_over_the_run_that_replaced_it(
    scoring: ScoringProject, tmp_path: Path
) -> None:
    output = SQLiteOutput(tmp_path)
    repo = BatchRunRepository(scoring.client.db)
    old = scoring.run(scoring.spec(output))
    # The old run is made to look killed before its commit: running, with a heartbeat long
    # gone, and none of its rows in the table (a run killed after its commit is finished).
    repo.update(old.id, status="running", heartbeat_at=old.started_at - 3600)
    output.execute('DELETE FROM "scores"')
    newer = scoring.run(scoring.spec(output, reference="churn:2"))
    assert repo.get(old.id).status == "failed"  # superseded by the newer run
    with pytest.raises(BatchRunStateError, match=newer.id[:12]):
        resume_batch(scoring.client, old.id)
    assert {row["model_version"] for row in output.rows()} == {2}

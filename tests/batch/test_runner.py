"""Running a batch job: which version scores, what the run's record says (on a SQLite and on a
PostgreSQL store), where ``--env`` sends the output, and that how the input is split into
files and batches does not change the output."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelrail.batch.runner import resume_batch, run_batch
from modelrail.batch.spec import JobSpec
from modelrail.cli.batch_options import job_spec_from_options
from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.errors import BatchInputError, BatchRunStateError, ModelrailError
from modelrail.store.batch_runs_repo import BatchRunRepository
from tests.batch.conftest import (
    BINARY,
    FEATURES,
    ROWS,
    ParquetOutput,
    ScoringProject,
    SQLiteOutput,
    by_id,
    expected_predictions,
)

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def test_reference_to_an_environment_scores_with_the_version_it_holds_when_the_run_starts(
    scoring: ScoringProject,
) -> None:
    output = SQLiteOutput(scoring.root)
    client = scoring.client
    client.promote(f"{BINARY}:1", to="staging", force=True, reason="batch test")
    held = {(h.environment, h.version) for h in client.board() if h.model == BINARY}
    assert held == {("dev", 2), ("staging", 1)}
    record = scoring.run(scoring.spec(output, reference=f"{BINARY}@staging"))
    assert (record.model, record.version, record.reference) == (BINARY, 1, f"{BINARY}@staging")
    rows = by_id(output.rows())
    assert {row["model_version"] for row in rows.values()} == {1}
    expected = expected_predictions(scoring.models.binary_v1, scoring.frame)
    assert {int(k): row["prediction"] for k, row in rows.items()} == expected

    client.promote(f"{BINARY}:2", to="staging", force=True, reason="batch test")
    again = scoring.run(scoring.spec(output, reference=f"{BINARY}@staging"))
    assert again.version == 2
    assert {row["model_version"] for row in output.rows()} == {2}
    latest = scoring.run(scoring.spec(output, reference=BINARY))
    assert (latest.version, latest.reference) == (2, BINARY)


def test_record_of_a_successful_run(scoring_on_each_store: ScoringProject) -> None:
    scoring = scoring_on_each_store
    output = SQLiteOutput(scoring.root)
    before = time.time()
    record = scoring.run(scoring.spec(output, batch_rows=64))
    repo = BatchRunRepository(scoring.client.db)
    assert repo.get(record.id[:8]) == record
    assert record.status == "succeeded" and record.error is None
    assert (record.model, record.version, record.reference) == (BINARY, 1, f"{BINARY}:1")
    assert (record.rows_read, record.rows_written, record.rows_rejected) == (ROWS, ROWS, 0)
    assert SHA256.match(record.input_fingerprint)
    assert "input.parquet" in record.input_description
    assert record.output == f"sqlite:///{scoring.root / 'scores.db'} table scores"
    assert (record.job, record.trigger, record.engine, record.checkpoint) == (
        None,
        "manual",
        "local",
        None,
    )
    assert (record.user, record.host, record.pid) == ("tester", socket.gethostname(), os.getpid())
    assert record.finished_at is not None
    assert before <= record.started_at <= record.finished_at <= time.time()
    assert JobSpec.from_json(record.spec) == scoring.spec(output, batch_rows=64)


def test_input_fingerprint_is_stable_for_the_same_bytes_and_changes_with_them(
    scoring_on_each_store: ScoringProject,
) -> None:
    scoring = scoring_on_each_store
    output = ParquetOutput(scoring.root)
    first = scoring.run(scoring.spec(output))
    again = scoring.run(scoring.spec(output, batch_rows=17))
    elsewhere = scoring.root / "copy" / "input.parquet"
    elsewhere.parent.mkdir()
    shutil.copyfile(scoring.parquet(), elsewhere)
    copied = scoring.run(scoring.spec(output, inputs=(str(elsewhere),)))
    changed = scoring.frame.copy()
    nudged = changed["f0"].to_numpy(copy=True)
    nudged[5] += 1e-9
    changed["f0"] = nudged
    other = scoring.run(scoring.spec(output, inputs=(scoring.parquet("input.parquet", changed),)))
    fingerprints = [r.input_fingerprint for r in (first, again, copied, other)]
    assert fingerprints[0] == fingerprints[1] == fingerprints[2] != fingerprints[3]
    history = BatchRunRepository(scoring.client.db).recent()
    assert [r.id for r in history] == [r.id for r in (other, copied, again, first)]


def test_record_of_a_failed_run_keeps_its_error(scoring_on_each_store: ScoringProject) -> None:
    scoring = scoring_on_each_store
    output = SQLiteOutput(scoring.root)
    bad = scoring.frame.copy()
    bad.loc[250, "f2"] = float("nan")
    spec = scoring.spec(output, inputs=(scoring.parquet("bad.parquet", bad),), batch_rows=50)
    with pytest.raises(BatchInputError) as caught:
        scoring.run(spec)
    repo = BatchRunRepository(scoring.client.db)
    (failed,) = repo.recent(status="failed")
    assert failed.status == "failed" and failed.error == caught.value.message
    assert "input row 250 " in failed.error and "column 'f2'" in failed.error
    assert (failed.version, failed.rows_written, failed.checkpoint) == (1, 0, None)
    assert failed.finished_at is not None and failed.finished_at >= failed.started_at
    assert output.rows() == []

    # A job that cannot start at all (a column missing from the input) is recorded too.
    without = scoring.frame.drop(columns=["f3"])
    spec = scoring.spec(output, inputs=(scoring.parquet("narrow.parquet", without),))
    with pytest.raises(BatchInputError, match="input column 'f3' is missing from") as missing:
        scoring.run(spec)
    (latest, _) = repo.recent(status="failed")
    assert (latest.status, latest.error, latest.rows_read) == ("failed", missing.value.message, 0)
    with pytest.raises(BatchRunStateError):
        resume_batch(scoring.client, latest.id)


def test_rows_with_extreme_but_finite_features_are_scored_like_scikit_learn(
    scoring: ScoringProject,
) -> None:
    """Scores far beyond exp's range, and a weighted sum that overflows to infinity, are
    not bad rows: finite features are scored, whatever their size, without a warning."""
    output = SQLiteOutput(scoring.root)
    model = scoring.models.binary_v1
    frame = scoring.frame.copy()
    towards_positive = np.sign(model.coef_[0])
    frame.loc[3, list(FEATURES)] = towards_positive * 1e4
    frame.loc[4, list(FEATURES)] = -towards_positive * 1e4
    frame.loc[5, list(FEATURES)] = towards_positive * 1e308
    spec = scoring.spec(output, inputs=(scoring.parquet("extreme.parquet", frame),), batch_rows=64)
    record = scoring.run(spec)
    assert (record.rows_written, record.rows_rejected) == (ROWS, 0)
    rows = by_id(output.rows())
    with np.errstate(over="ignore"):  # scikit-learn's own product overflows on row 5
        expected = expected_predictions(model, frame)
    assert {int(k): row["prediction"] for k, row in rows.items()} == expected
    probability = {int(k): row["probability"] for k, row in rows.items()}
    assert [probability[1000 + i] for i in (3, 4, 5)] == [1.0, 0.0, 1.0]


def test_env_takes_output_and_table_from_the_environments_settings(
    scoring: ScoringProject,
) -> None:
    toml = scoring.root / "modelrail.toml"
    toml.write_text(
        toml.read_text()
        + '\n[environments.staging.settings]\nbatch_output = "sqlite:///staging.db"\n'
        + 'batch_table = "staging_scores"\n'
    )
    settings = load_settings(cwd=scoring.root, environ={}, create=False)
    with Client(settings=settings, user="tester") as client:

        def spec(output: str | None, table: str | None, env: str = "staging") -> JobSpec:
            return job_spec_from_options(
                client,
                f"{BINARY}:1",
                inputs=[scoring.parquet()],
                query=None,
                query_url=None,
                output=output,
                table=table,
                id_columns=["id"],
                env=env,
                ttl=None,
                on_bad_rows="fail",
            )

        from_settings = spec(None, None)
        assert (from_settings.output, from_settings.table) == (
            "sqlite:///staging.db",
            "staging_scores",
        )
        record = run_batch(client, from_settings)
        staging = SQLiteOutput(scoring.root, "staging_scores")
        staging.path = scoring.root / "staging.db"
        assert len(by_id(staging.rows())) == ROWS == record.rows_written
        assert record.output.endswith("staging.db table staging_scores")

        given = spec("sqlite:///given.db", None)  # on the command line: under the working folder
        assert given.output == f"sqlite:///{Path.cwd() / 'given.db'}"
        assert given.table == "staging_scores"
        assert spec("sqlite:///given.db", "mine").table == "mine"
        with pytest.raises(
            ModelrailError, match=r"\[environments.dev.settings\] has no batch_output"
        ):
            spec(None, None, env="dev")


def test_how_the_input_is_split_does_not_change_the_output(scoring: ScoringProject) -> None:
    frame = scoring.frame
    folder = scoring.root / "data" / "parts"
    folder.mkdir(parents=True)
    for n, start in enumerate(range(0, ROWS, 70)):
        part = frame.iloc[start : start + 70]
        pd.DataFrame(part).to_parquet(folder / f"part-{n}.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".hidden.parquet").write_text("not parquet")
    whole = SQLiteOutput(scoring.root, "whole")
    split = SQLiteOutput(scoring.root, "split")
    scoring.run(scoring.spec(whole, batch_rows=1000))
    record = scoring.run(scoring.spec(split, inputs=(str(folder),), batch_rows=7))
    assert record.rows_read == ROWS
    assert "5 Parquet files" in record.input_description

    def strip(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
        return {k: (r["prediction"], r["model_version"]) for k, r in by_id(rows).items()}

    assert strip(split.rows()) == strip(whole.rows())
    probabilities = {k: r["probability"] for k, r in by_id(whole.rows()).items()}
    for key, row in by_id(split.rows()).items():  # equal up to the order of float additions
        assert row["probability"] == pytest.approx(probabilities[key], rel=1e-12)
    assert set(FEATURES).isdisjoint(split.rows()[0])  # inputs are not copied to the output


def test_id_column_named_like_an_output_column_is_refused(scoring: ScoringProject) -> None:
    frame = scoring.frame.rename(columns={"customer": "model"})
    spec = scoring.spec(
        SQLiteOutput(scoring.root),
        inputs=(scoring.parquet("clash.parquet", frame),),
        id_columns=("model",),
    )
    with pytest.raises(BatchInputError, match="id column 'model' has the name of an output column"):
        scoring.run(spec)


def test_output_paths_are_relative_to_the_project(
    scoring: ScoringProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = scoring.root / "data" / "elsewhere"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    scoring.run(scoring.spec(ParquetOutput(scoring.root)))
    scoring.run(scoring.spec(SQLiteOutput(scoring.root)))
    assert len(SQLiteOutput(scoring.root).rows()) == ROWS
    assert len(ParquetOutput(scoring.root).rows()) == ROWS
    assert not (elsewhere / "scores").exists()

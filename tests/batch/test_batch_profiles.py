"""A batch run records what it scored: the profile of its input (the model's input columns)
and the distribution of its predictions, computed from the batches it scores, on SQLite and
PostgreSQL stores; the batch size changes nothing, a resumed run profiles the rows it scored
after resuming, and ``modelrail batch show`` prints it (``--json``: as an object)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelrail.batch.runner import resume_batch
from modelrail.monitoring.batch_profiles import BatchProfiling
from modelrail.monitoring.dataset_profiles import fingerprint_and_profile
from modelrail.monitoring.profiles import BatchProfile
from modelrail.store.batch_runs_repo import BatchRunRepository
from tests.batch.conftest import (
    BINARY,
    FEATURES,
    MULTI,
    ROWS,
    ParquetOutput,
    ScoringProject,
    SQLiteOutput,
    modelrail_cli,
)
from tests.batch.test_kill_resume import checkpoint_rows, kill_during_run, make_stale


def _shares(predictions: object) -> dict[str, float]:
    counts = pd.Series(predictions).astype(str).value_counts(normalize=True)
    return {str(k): float(v) for k, v in counts.items()}


def test_a_batch_run_records_its_input_profile_and_prediction_distribution(
    scoring_on_each_store: ScoringProject,
) -> None:
    scoring = scoring_on_each_store
    record = scoring.run(scoring.spec(SQLiteOutput(scoring.root), batch_rows=64))
    profile = scoring.client.batch_profile(record.id)
    assert profile is not None and profile.first_row == 0
    assert record.profile is not None and BatchProfile.from_text(record.profile) == profile

    assert profile.input is not None
    assert list(profile.input.columns) == list(FEATURES)  # the model's inputs, not the id column
    expected = fingerprint_and_profile(scoring.frame[list(FEATURES)]).profile
    assert expected is not None and profile.input.rows == ROWS
    for name in FEATURES:
        got, want = profile.input.columns[name], expected.columns[name]
        assert (got.count, got.quantiles, got.edges) == (want.count, want.quantiles, want.edges)

    prediction = profile.prediction
    assert prediction is not None and prediction.kind == "categorical"
    predicted = scoring.models.binary_v1.predict(scoring.frame[list(FEATURES)])
    assert prediction.frequencies == pytest.approx(_shares(predicted), abs=1e-6)

    tiered = scoring.spec(SQLiteOutput(scoring.root), reference=f"{MULTI}:1", table="tiers")
    labels = scoring.run(tiered)
    tiers = scoring.client.batch_profile(labels.id)
    assert tiers is not None and tiers.prediction is not None
    predicted = scoring.models.multi.predict(scoring.frame[list(FEATURES)])
    assert tiers.prediction.frequencies == pytest.approx(_shares(predicted), abs=1e-6)
    assert set(tiers.prediction.frequencies) <= {"low", "mid", "high"}


def test_the_batch_size_does_not_change_the_profile(scoring: ScoringProject) -> None:
    output = ParquetOutput(scoring.root)
    small = scoring.run(scoring.spec(output, batch_rows=17))
    whole = scoring.run(scoring.spec(output, batch_rows=10_000))
    first, second = scoring.client.batch_profile(small.id), scoring.client.batch_profile(whole.id)
    assert first is not None and second is not None
    assert first.prediction == second.prediction
    assert first.input is not None and second.input is not None
    for name, column in second.input.columns.items():
        other = first.input.columns[name]
        assert (other.quantiles, other.proportions) == (column.quantiles, column.proportions)
        assert other.mean == pytest.approx(column.mean, rel=2e-6)


def test_a_failed_run_records_no_profile(scoring: ScoringProject) -> None:
    bad = scoring.frame.copy()
    bad.loc[7, "f2"] = float("nan")
    spec = scoring.spec(SQLiteOutput(scoring.root), inputs=(scoring.parquet("bad.parquet", bad),))
    with pytest.raises(Exception, match="input row 7"):
        scoring.run(spec)
    (failed,) = BatchRunRepository(scoring.client.db).recent()
    assert failed.status == "failed" and failed.profile is None
    assert scoring.client.batch_profile(failed.id) is None


def test_a_resumed_run_profiles_the_rows_scored_after_resuming(
    scoring: ScoringProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = ParquetOutput(scoring.root)
    spec = scoring.spec(output, batch_rows=20, part_rows=20)
    killed = kill_during_run(scoring, spec, 8)
    resumed_from = checkpoint_rows(killed)
    assert 0 < resumed_from < ROWS
    make_stale(scoring, killed.id)
    record = resume_batch(scoring.client, killed.id)
    assert record.status == "succeeded"
    profile = scoring.client.batch_profile(record.id)
    assert profile is not None and profile.input is not None
    assert (profile.first_row, profile.input.rows) == (resumed_from, ROWS - resumed_from)
    shown = modelrail_cli(monkeypatch, scoring.root, "batch", "show", record.id)
    assert f"(from row {resumed_from}: resumed)" in shown.stdout


def test_batch_show_prints_the_profile_and_json_gives_it_as_an_object(
    scoring: ScoringProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = scoring.run(scoring.spec(SQLiteOutput(scoring.root)))
    profile = scoring.client.batch_profile(record.id)
    assert profile is not None and profile.prediction is not None and profile.input is not None

    shown = modelrail_cli(monkeypatch, scoring.root, "batch", "show", record.id[:8])
    assert shown.code == 0, shown.stderr
    assert re.search(rf"profiled\s+4 input columns of {ROWS} rows", shown.stdout)
    assert re.search(r"predictions\s+" + re.escape(profile.prediction.summary(top=3)), shown.stdout)
    for name in FEATURES:
        line = next(x for x in shown.stdout.splitlines() if x.strip().startswith(f"│ {name} "))
        assert "numeric" in line and "mean " in line and "median " in line

    as_json = json.loads(
        modelrail_cli(monkeypatch, scoring.root, "batch", "show", record.id, "--json").stdout
    )
    assert as_json["profile"] == profile.to_json()
    assert as_json["profile"]["prediction"]["frequencies"] == profile.prediction.frequencies
    assert as_json["status"] == "succeeded" and as_json["model"] == BINARY


def test_large_batches_with_gaps_are_profiled_as_the_whole_data(
    scoring: ScoringProject,
) -> None:
    rng = np.random.default_rng(5)
    rows = 60_000
    frame = pd.DataFrame({name: rng.normal(10.0, 3.0, rows) for name in FEATURES})
    first = FEATURES[0]
    frame.loc[rng.choice(rows, 600, replace=False), first] = np.nan
    frame.loc[:4, first] = np.inf
    profiling = BatchProfiling(scoring.versions["churn:1"].signature, list(FEATURES), "label")
    for start in range(0, rows, 20_000):
        batch = pa.RecordBatch.from_pandas(frame.iloc[start : start + 20_000])
        profiling.add_input(batch)
    text = profiling.to_text()
    assert text is not None
    profile = BatchProfile.from_text(text).input
    whole = fingerprint_and_profile(frame).profile
    assert profile is not None and whole is not None and profile.rows == rows
    for name in FEATURES:
        got, want = profile.columns[name], whole.columns[name]
        assert (got.count, got.missing) == (want.count, want.missing)
        assert got.quantiles[50] == pytest.approx(want.quantiles[50], abs=0.15)
        assert got.mean == pytest.approx(want.mean, abs=0.1)
    assert profile.columns[first].missing == 605  # NaN and infinities

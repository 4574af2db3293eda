"""Batch runs in an environment that logs predictions leave a sample of their scored rows in
the prediction log, source "batch", each under its id columns' values, so labels loaded by
id attach to them; runs by version number, or in an environment that logs nothing, leave
none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modelrail.config import init_project
from modelrail.monitoring.logfiles import (
    feedback_table,
    labelled_predictions,
    read_predictions,
    write_feedback,
)
from tests.batch.conftest import (
    BINARY,
    FEATURES,
    ROWS,
    Models,
    ParquetOutput,
    ScoringProject,
    SQLiteOutput,
    fit_models,
    input_frame,
    open_project,
)

POLICY = """
[environments.dev.monitoring]
log_predictions = {rate}
exclude_columns = ["f3"]
"""


@pytest.fixture(scope="module")
def models() -> Models:
    return fit_models()


def project_logging(root: Path, models: Models, rate: float) -> ScoringProject:
    init_project(root)
    with (root / "modelrail.toml").open("a") as config:
        config.write(POLICY.format(rate=rate))
    return open_project(root, models)


@pytest.fixture
def logging_project(tmp_path: Path, models: Models) -> Iterator[ScoringProject]:
    project = project_logging(tmp_path, models, 1.0)
    yield project
    project.client.close()


def logs(project: ScoringProject) -> Path:
    return Path(project.client.settings.monitoring_folder)


def test_a_run_in_a_logging_environment_logs_every_row_under_its_id(
    logging_project: ScoringProject,
) -> None:
    project = logging_project
    output = ParquetOutput(project.root)
    record = project.run(project.spec(output, reference=f"{BINARY}@dev", batch_rows=64))
    table = read_predictions(logs(project), BINARY)
    assert table.num_rows == ROWS
    logged = {r["request_id"]: r for r in table.to_pylist()}
    frame = project.frame.set_index("id")
    written = {str(r["id"]): r for r in output.rows()}
    assert set(logged) == set(written) == {str(i) for i in frame.index}
    for key, row in logged.items():
        assert row["prediction"] == str(written[key]["prediction"])
        assert row["prediction_value"] == pytest.approx(written[key]["probability"])
        for name in ("f0", "f1", "f2"):
            assert row[f"input.{name}"] == frame.loc[int(key), name]
    assert "input.f3" not in table.column_names  # the environment keeps it out
    first = table.to_pylist()[0]
    assert (first["source"], first["environment"]) == ("batch", "dev")
    assert set(table.column("version").to_pylist()) == {record.version} == {2}  # what dev holds
    assert (first["row"], first["sample_rate"], first["latency_ms"]) == (0, 1.0, None)
    assert record.rows_written == ROWS

    # Outcomes loaded by id attach to the rows the run logged.
    ids = [1000, 1001, 1002]
    labels = feedback_table(ids, [1, 0, 1], source="test", loaded_by="tester", now=1e9)
    write_feedback(logs(project), BINARY, labels)
    joined = labelled_predictions(logs(project), BINARY)
    assert sorted(joined.column("request_id").to_pylist()) == ["1000", "1001", "1002"]


def test_several_id_columns_are_joined_by_a_bar(logging_project: ScoringProject) -> None:
    project = logging_project
    spec = project.spec(
        ParquetOutput(project.root), reference=f"{BINARY}@dev", id_columns=("customer", "region")
    )
    project.run(spec)
    ids = set(read_predictions(logs(project), BINARY).column("request_id").to_pylist())
    pairs = zip(project.frame["customer"], project.frame["region"], strict=True)
    expected = {f"{customer}|{region}" for customer, region in pairs}
    assert ids == expected


def test_rows_set_aside_are_not_logged_and_the_rest_keep_their_inputs(
    logging_project: ScoringProject,
) -> None:
    project = logging_project
    frame = input_frame()
    frame.loc[frame.index % 7 == 0, "f1"] = np.nan  # refused: the model takes no gaps
    spec = project.spec(
        ParquetOutput(project.root),
        reference=f"{BINARY}@dev",
        inputs=(project.parquet("gaps.parquet", frame),),
        on_bad_rows="skip",
        batch_rows=50,
    )
    record = project.run(spec)
    table = read_predictions(logs(project), BINARY)
    assert table.num_rows == record.rows_written == ROWS - int((frame.index % 7 == 0).sum())
    by_id = frame.set_index("id")
    for row in table.to_pylist():
        key = int(row["request_id"])
        assert not np.isnan(by_id.loc[key, "f1"])
        assert [row[f"input.{n}"] for n in ("f0", "f1")] == list(by_id.loc[key, ["f0", "f1"]])


def test_the_environments_rate_samples_the_rows(tmp_path: Path, models: Models) -> None:
    project = project_logging(tmp_path, models, 0.5)
    try:
        project.run(project.spec(ParquetOutput(project.root), reference=f"{BINARY}@dev"))
        table = read_predictions(logs(project), BINARY)
    finally:
        project.client.close()
    # Binomial(300, 0.5): mean 150, sd 8.7; six sd either way fails once in ~10^9 runs.
    assert 98 <= table.num_rows <= 202
    assert set(table.column("sample_rate").to_pylist()) == {0.5}


def test_runs_by_version_or_in_an_environment_that_logs_nothing_log_nothing(
    tmp_path: Path, models: Models
) -> None:
    project = project_logging(tmp_path, models, 0.0)
    try:
        project.run(project.spec(ParquetOutput(project.root), reference=f"{BINARY}@dev"))
        by_version = SQLiteOutput(project.root, table="by_version")
        project.run(project.spec(by_version, reference=f"{BINARY}:1"))
        assert read_predictions(logs(project), BINARY).num_rows == 0
    finally:
        project.client.close()
    assert not (logs(project) / "predictions").exists()


def test_features_of_the_log_are_the_models_inputs(logging_project: ScoringProject) -> None:
    project = logging_project
    project.run(project.spec(ParquetOutput(project.root), reference=f"{BINARY}@dev"))
    table = read_predictions(logs(project), BINARY)
    inputs = [n for n in table.column_names if n.startswith("input.")]
    assert inputs == [f"input.{n}" for n in FEATURES if n != "f3"]
    assert all(table.schema.field(n).type == pa.float64() for n in inputs)

"""Prediction and label logs are whole Parquet files that readers combine across versions."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelrail.errors import InvalidInputError, MonitoringDataError
from modelrail.monitoring import logfiles

NOW = 1_800_000_000.0  # 2027-01-15


def _predictions(ids: list[str], at: float, version: int = 1, **inputs: list[object]) -> pa.Table:
    count = len(ids)
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(ids),
        "row": pa.array([0] * count, pa.int32()),
        "time": pa.array([logfiles._moment(at)] * count, logfiles.TIME_TYPE),
        "model": pa.array(["churn"] * count),
        "version": pa.array([version] * count, pa.int64()),
        "environment": pa.array(["prod"] * count),
        "source": pa.array(["serve"] * count),
        "sample_rate": pa.array([1.0] * count),
        "latency_ms": pa.array([0.2] * count),
        "prediction": pa.array(["yes" if i % 2 else "no" for i in range(count)]),
        "prediction_value": pa.array([0.5] * count),
    }
    for name, values in inputs.items():
        columns[f"input.{name}"] = pa.array(values)
    return pa.table(columns)


def test_files_of_two_versions_read_as_one_table_with_missing_columns_as_null(
    tmp_path: Path,
) -> None:
    logfiles.write_table(tmp_path, "predictions", "churn", _predictions(["a"], NOW, tenure=[3.0]))
    second = _predictions(["b"], NOW + 1, version=2, plan=["pro"])
    logfiles.write_table(tmp_path, "predictions", "churn", second)
    table = logfiles.read_predictions(tmp_path, "churn")
    rows = sorted(table.to_pylist(), key=lambda r: r["request_id"])
    assert [(r["version"], r["input.tenure"], r["input.plan"]) for r in rows] == [
        (1, 3.0, None),
        (2, None, "pro"),
    ]
    assert logfiles.read_predictions(tmp_path, "churn", version=2).num_rows == 1


def test_a_column_whose_type_differs_between_files_is_read_as_text(tmp_path: Path) -> None:
    logfiles.write_table(tmp_path, "predictions", "churn", _predictions(["a"], NOW, plan=[1.5]))
    logfiles.write_table(tmp_path, "predictions", "churn", _predictions(["b"], NOW, plan=["pro"]))
    values = sorted(logfiles.read_predictions(tmp_path, "churn").column("input.plan").to_pylist())
    assert values == ["1.5", "pro"]


def test_a_time_range_reads_only_records_inside_it(tmp_path: Path) -> None:
    for day in range(5):
        table = _predictions([f"r{day}"], NOW + day * 86_400)
        logfiles.write_table(tmp_path, "predictions", "churn", table)
    table = logfiles.read_predictions(tmp_path, "churn", since=NOW + 86_400, until=NOW + 3 * 86_400)
    assert sorted(table.column("request_id").to_pylist()) == ["r1", "r2"]
    folders = sorted(p.name for p in (tmp_path / "predictions" / "model=churn").iterdir())
    assert folders == [f"date=2027-01-{15 + d}" for d in range(5)]


def test_nothing_logged_reads_as_an_empty_table_with_the_record_columns(tmp_path: Path) -> None:
    table = logfiles.read_predictions(tmp_path, "nobody")
    assert table.num_rows == 0
    assert "request_id" in table.column_names and "prediction" in table.column_names


def test_a_file_left_half_written_by_a_crash_is_not_read(tmp_path: Path) -> None:
    written = logfiles.write_table(tmp_path, "predictions", "churn", _predictions(["a"], NOW))
    assert written is not None
    path = Path(written)
    # What a process killed mid-write leaves: the temporary name, never the final one.
    (path.parent / ".123-4-dead.parquet.tmp").write_bytes(path.read_bytes()[:40])
    assert logfiles.read_predictions(tmp_path, "churn").column("request_id").to_pylist() == ["a"]


def test_a_damaged_log_file_is_named_in_the_error(tmp_path: Path) -> None:
    written = logfiles.write_table(tmp_path, "predictions", "churn", _predictions(["a"], NOW))
    assert written is not None
    path = Path(written)
    path.write_bytes(b"not parquet")
    with pytest.raises(MonitoringDataError, match=path.name):
        logfiles.read_predictions(tmp_path, "churn")


def test_the_last_label_for_a_prediction_wins(tmp_path: Path) -> None:
    logfiles.write_table(tmp_path, "predictions", "churn", _predictions(["a", "b"], NOW))
    first = logfiles.feedback_table(
        ["a", "b"], ["yes", "no"], source="f1", loaded_by="ann", now=NOW
    )
    logfiles.write_feedback(tmp_path, "churn", first)
    late = logfiles.feedback_table(["a"], ["no"], source="f2", loaded_by="bob", now=NOW + 60)
    logfiles.write_feedback(tmp_path, "churn", late)
    labels = {
        r["request_id"]: (r["label"], r["source"])
        for r in logfiles.read_feedback(tmp_path, "churn").to_pylist()
    }
    assert labels == {"a": ("no", "f2"), "b": ("no", "f1")}
    joined = logfiles.labelled_predictions(tmp_path, "churn")
    assert sorted(
        zip(
            joined.column("request_id").to_pylist(), joined.column("label").to_pylist(), strict=True
        )
    ) == [
        ("a", "no"),
        ("b", "no"),
    ]


def test_labels_keep_the_number_and_the_text_the_api_would_answer(tmp_path: Path) -> None:
    table = logfiles.feedback_table(
        pa.array([17.0, 18.0]), [True, False], source="t", loaded_by="u", now=NOW
    )
    assert table.column("request_id").to_pylist() == ["17", "18"]
    assert table.column("label").to_pylist() == ["true", "false"]
    numbers = logfiles.feedback_table(["x"], [2.5], source="t", loaded_by="u", now=NOW)
    assert numbers.column("label_value").to_pylist() == [2.5]


def test_labels_without_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no id"):
        logfiles.feedback_table(["a", None], [1, 0], source="t", loaded_by="u", now=NOW)
    with pytest.raises(InvalidInputError, match="2 ids but 1 labels"):
        logfiles.feedback_table(["a", "b"], [1], source="t", loaded_by="u", now=NOW)


def test_retention_removes_whole_days_before_the_cut_and_keeps_the_rest(tmp_path: Path) -> None:
    for day in range(6):
        at = NOW + day * 86_400
        logfiles.write_table(tmp_path, "predictions", "churn", _predictions([f"r{day}"], at))
        labels = logfiles.feedback_table([f"r{day}"], ["no"], source="t", loaded_by="u", now=at)
        logfiles.write_feedback(tmp_path, "churn", labels)
    removed = logfiles.enforce_retention(tmp_path, "churn", older_than=NOW + 4 * 86_400)
    assert removed == 6  # days 0, 1 and 2 of both logs: day 3 may hold records of day 4
    kept = logfiles.read_predictions(tmp_path, "churn").column("request_id").to_pylist()
    assert sorted(kept) == ["r3", "r4", "r5"]
    assert logfiles.logged_models(tmp_path) == ["churn"]


def test_written_files_are_parquet_a_user_can_read_with_any_tool(tmp_path: Path) -> None:
    started = time.time()
    written = logfiles.write_table(tmp_path, "predictions", "churn", _predictions(["a"], NOW))
    assert written is not None
    path = Path(written)
    assert path.suffix == ".parquet"
    assert pq.read_table(path).num_rows == 1
    assert int(path.name.split("-")[0]) >= int(started * 1000)

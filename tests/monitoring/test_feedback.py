"""Loading labels: from CSV, Parquet, a folder and a SQL query, counted as a user is told,
and refused whole (nothing stored) when the input is not what it should be."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelrail.client import Client
from modelrail.errors import FeedbackError
from modelrail.monitoring import logfiles
from tests.monitoring.conftest import DAY, NOW, Registered, frame, log_traffic


def _stored(client: Client) -> list[Path]:
    return sorted((Path(client.monitoring_root) / "feedback").rglob("*.parquet"))


def test_a_parquet_file_is_loaded_and_counted(
    client: Client, registered: Registered, tmp_path: Path
) -> None:
    ids = log_traffic(client, registered.churn, frame(10, 40), at=NOW - DAY)
    first = tmp_path / "first.parquet"
    pd.DataFrame({"id": ids[:6], "y": ["yes"] * 6}).to_parquet(first)
    summary = client.load_feedback(
        "churn", inputs=[str(first)], id_columns=["id"], label_column="y"
    )
    assert (summary.labels, summary.replaced, summary.unmatched, summary.repeated) == (6, 0, 0, 0)
    assert summary.source.endswith("first.parquet") and summary.path is not None
    # Again for some of them, for ids not logged (yet), twice for one id and one empty label.
    again = tmp_path / "again.csv"
    rows = {"id": [*ids[:3], "later-1", "later-2", ids[5], ids[5], ids[4]]}
    rows["y"] = ["no", "no", "no", "yes", "yes", "no", "yes", None]
    pd.DataFrame(rows).to_csv(again, index=False)
    summary = client.load_feedback(
        "churn", inputs=[str(again)], id_columns=["id"], label_column="y"
    )
    assert (summary.labels, summary.replaced, summary.unmatched) == (7, 4, 2)
    assert (summary.repeated, summary.skipped) == (1, 1)
    latest = {
        r["request_id"]: r["label"]
        for r in logfiles.read_feedback(client.monitoring_root, "churn").to_pylist()
    }
    # The last row of a repeated id wins; the empty label left the earlier one in place.
    assert (latest[ids[0]], latest[ids[5]], latest[ids[4]], latest["later-1"]) == (
        "no",
        "yes",
        "yes",
        "yes",
    )
    assert len(_stored(client)) == 2


def test_a_folder_of_parquet_files_with_numeric_ids_and_rows(
    client: Client, tmp_path: Path
) -> None:
    folder = tmp_path / "outcomes"
    folder.mkdir()
    for part in range(3):
        table = pa.table(
            {
                "customer": pa.array([part * 10 + i for i in range(4)], pa.int64()),
                "line": pa.array([0, 1, 0, 1], pa.int32()),
                "churned": pa.array([True, False, True, False]),
            }
        )
        pq.write_table(table, folder / f"part-{part}.parquet")
    summary = client.load_feedback(
        "churn",
        inputs=[str(folder)],
        id_columns=["customer"],
        label_column="churned",
        row_column="line",
    )
    assert (summary.labels, summary.unmatched) == (12, 12)
    stored = logfiles.read_feedback(client.monitoring_root, "churn")
    first = sorted(stored.to_pylist(), key=lambda r: (int(r["request_id"]), r["row"]))[1]
    # Ids and labels as the API spells them: the number's text, JSON's false.
    assert (first["request_id"], first["row"], first["label"]) == ("1", 1, "false")


def test_a_batch_jobs_several_id_columns_are_joined_as_its_log_joins_them(
    client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "labels.csv"
    pd.DataFrame({"store": [7, 8], "day": ["mon", "tue"], "sales": [1.5, 2.0]}).to_csv(
        path, index=False
    )
    client.load_feedback(
        "price", inputs=[str(path)], id_columns=["store", "day"], label_column="sales"
    )
    stored = logfiles.read_feedback(client.monitoring_root, "price").to_pylist()
    assert sorted((r["request_id"], r["label"], r["label_value"]) for r in stored) == [
        ("7|mon", "1.5", 1.5),
        ("8|tue", "2", 2.0),
    ]


def test_labels_from_a_sql_query(client: Client, tmp_path: Path) -> None:
    database = tmp_path / "crm.db"
    with sqlite3.connect(database) as connection:
        connection.execute("create table outcomes (request text, churned text)")
        connection.executemany(
            "insert into outcomes values (?, ?)", [("a", "yes"), ("b", "no"), ("c", "yes")]
        )
    summary = client.load_feedback(
        "churn",
        query="select request, churned from outcomes where churned = 'yes'",
        query_url=f"sqlite:///{database}",
        id_columns=["request"],
        label_column="churned",
    )
    assert summary.labels == 2
    assert summary.source.startswith("query on sqlite:///")
    stored = logfiles.read_feedback(client.monitoring_root, "churn")
    assert sorted(stored.column("request_id").to_pylist()) == ["a", "c"]
    assert set(stored.column("source").to_pylist()) == {"query"}


def _write(tmp_path: Path, name: str, frame_: pd.DataFrame) -> str:
    path = tmp_path / name
    if name.endswith(".csv"):
        frame_.to_csv(path, index=False)
    else:
        frame_.to_parquet(path)
    return str(path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing id column", r"input column 'id' is missing from .*labels.csv \(it has: key, y\)"),
        ("missing label column", r"input column 'y' is missing from .*labels.parquet"),
        ("empty file", r"labels.csv has no rows: no labels to load"),
        ("folder without files", r"no input file matches"),
        ("not a table file", r"labels.txt is neither a Parquet"),
        ("damaged file", r"cannot read .*labels.parquet as Parquet"),
        ("list ids", r"id column 'id' of .*labels.parquet holds list<"),
        ("fractional ids", r"id column 'id' of .*labels.parquet holds double values"),
        ("missing ids", r"id column 'id' of .*labels.csv is empty in 1 row"),
        ("no labels at all", r"label column 'y' of .*labels.csv is empty in every row"),
        ("missing file", r"no input file matches"),
    ],
)
def test_bad_inputs_are_refused_naming_the_column_or_file_and_store_nothing(
    client: Client, tmp_path: Path, case: str, message: str
) -> None:
    made = {
        "missing id column": lambda: _write(
            tmp_path, "labels.csv", pd.DataFrame({"key": [1], "y": [1]})
        ),
        "missing label column": lambda: _write(
            tmp_path, "labels.parquet", pd.DataFrame({"id": ["a"]})
        ),
        "empty file": lambda: _write(tmp_path, "labels.csv", pd.DataFrame({"id": [], "y": []})),
        "folder without files": lambda: str((tmp_path / "empty").mkdir() or tmp_path / "empty"),
        "not a table file": lambda: str(_text(tmp_path / "labels.txt")),
        "damaged file": lambda: str(_damaged(tmp_path / "labels.parquet")),
        "list ids": lambda: _write(
            tmp_path, "labels.parquet", pd.DataFrame({"id": [[1, 2]], "y": [1]})
        ),
        "fractional ids": lambda: _write(
            tmp_path, "labels.parquet", pd.DataFrame({"id": [1.5], "y": [1]})
        ),
        "missing ids": lambda: _write(
            tmp_path, "labels.csv", pd.DataFrame({"id": ["a", None], "y": [1, 0]})
        ),
        "no labels at all": lambda: _write(
            tmp_path, "labels.csv", pd.DataFrame({"id": ["a"], "y": [None]})
        ),
        "missing file": lambda: str(tmp_path / "nowhere.parquet"),
    }
    path = made[case]()
    with pytest.raises(FeedbackError, match=message) as caught:
        client.load_feedback("churn", inputs=[path], id_columns=["id"], label_column="y")
    assert caught.value.exit_code == 2
    assert _stored(client) == []


def test_labels_for_an_unknown_model_are_refused(client: Client, tmp_path: Path) -> None:
    path = _write(tmp_path, "labels.csv", pd.DataFrame({"id": ["a"], "y": [1]}))
    with pytest.raises(FeedbackError, match="cannot load labels for model 'nobody'"):
        client.load_feedback("nobody", inputs=[path], id_columns=["id"], label_column="y")
    assert not (Path(client.monitoring_root) / "feedback").exists()


def _text(path: Path) -> Path:
    path.write_text("id,y\na,1\n", encoding="utf-8")
    return path


def _damaged(path: Path) -> Path:
    pd.DataFrame({"id": ["a"] * 100, "y": [1] * 100}).to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[:20] + data[-40:])
    return path

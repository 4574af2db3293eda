"""What each batch output holds after a run, read back as a user reads it: a SQLite file, a
PostgreSQL table, a Parquet dataset folder and Redis keys. One row per input row, the model's
own predictions, re-runs that replace, bad rows that stop the run or are set aside, and
existing tables that do not fit refused before anything is written."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, inspect

from modelrail.errors import BatchInputError, BatchOutputError
from modelrail.scoring.forms.record import PROBABILITY_ATOL
from modelrail.store.batch_runs_repo import BatchRunRepository
from tests.batch.conftest import (
    BINARY,
    FEATURES,
    MULTI,
    OUTPUT_COLUMNS,
    ROWS,
    Output,
    ParquetOutput,
    PostgresOutput,
    RedisOutput,
    ScoringProject,
    SQLiteOutput,
    by_id,
    expected_predictions,
    make_output,
)

BAD_ROW = 137  # 0-based; with 25 rows a batch, batches 0-4 are scored before it


def with_bad_rows(frame: pd.DataFrame, *rows: int) -> pd.DataFrame:
    bad = frame.copy()
    for n, row in enumerate(rows):
        bad.loc[row, FEATURES[1 + n % 3]] = np.nan if n % 2 == 0 else np.inf
    return bad


def assert_scored_by(
    rows: list[dict[str, Any]], model: Any, frame: pd.DataFrame, version: int, run_id: str
) -> None:
    """One output row per input row, each with the prediction and probability of ``model``."""
    keyed = by_id(rows)
    assert sorted(keyed) == sorted(str(i) for i in frame["id"])
    probability = model.predict_proba(frame[list(FEATURES)])[:, 1]
    for (row_id, prediction), p in zip(
        expected_predictions(model, frame).items(), probability, strict=True
    ):
        row = keyed[str(row_id)]
        assert row["prediction"] == prediction, row
        assert row["probability"] == pytest.approx(p, rel=0, abs=PROBABILITY_ATOL)
        stamp = (row["model"], row["model_version"], row["batch_run_id"])
        assert stamp == (BINARY, version, run_id)


# -- one row per input row -------------------------------------------------------------------


def test_each_input_row_becomes_one_row_with_the_models_prediction(
    scoring: ScoringProject, batch_output: Output
) -> None:
    started = time.time()
    record = scoring.run(scoring.spec(batch_output, batch_rows=40))
    rows = batch_output.rows()
    assert len(rows) == ROWS == record.rows_written == record.rows_read
    assert all(set(row) == {"id", "probability", *OUTPUT_COLUMNS} for row in rows)
    assert_scored_by(rows, scoring.models.binary_v1, scoring.frame, 1, record.id)
    assert all(started - 1 <= row["scored_at"] <= time.time() + 1 for row in rows)
    # both classes occur, and version 2 would predict differently: a mix-up would show
    predicted = scoring.models.binary_v1.predict(scoring.frame[list(FEATURES)])
    assert 0 < predicted.sum() < ROWS
    assert (predicted != scoring.models.binary_v2.predict(scoring.frame[list(FEATURES)])).all()


def test_three_class_model_writes_one_probability_column_per_class(
    scoring: ScoringProject, batch_output: Output
) -> None:
    record = scoring.run(scoring.spec(batch_output, reference=f"{MULTI}:1"))
    model, frame = scoring.models.multi, scoring.frame
    keyed = by_id(batch_output.rows())
    assert len(keyed) == ROWS
    columns = [f"probability_{c}" for c in model.classes_]
    assert sorted(columns) == ["probability_high", "probability_low", "probability_mid"]
    assert all(set(row) == {"id", *columns, *OUTPUT_COLUMNS} for row in keyed.values())
    expected = expected_predictions(model, frame)
    probabilities = model.predict_proba(frame[list(FEATURES)])
    for i, row_id in enumerate(frame["id"]):
        row = keyed[str(row_id)]
        assert row["prediction"] == expected[row_id]
        # The batch predictor form reproduces the model within the stated tolerance.
        found = [row[c] for c in columns]
        assert found == pytest.approx(list(probabilities[i]), rel=0, abs=PROBABILITY_ATOL)
        assert (row["model"], row["model_version"], row["batch_run_id"]) == (MULTI, 1, record.id)
    assert {row["prediction"] for row in keyed.values()} == {"low", "mid", "high"}


def test_rerun_replaces_rows_instead_of_adding_them(
    scoring: ScoringProject, batch_output: Output
) -> None:
    first = scoring.run(scoring.spec(batch_output, batch_rows=64))
    assert {row["batch_run_id"] for row in batch_output.rows()} == {first.id}
    second = scoring.run(scoring.spec(batch_output, reference=f"{BINARY}:2", batch_rows=64))
    rows = batch_output.rows()
    assert len(rows) == ROWS
    assert_scored_by(rows, scoring.models.binary_v2, scoring.frame, 2, second.id)
    assert first.input_fingerprint == second.input_fingerprint


def test_several_id_columns_key_the_rows(scoring: ScoringProject, batch_output: Output) -> None:
    ids = ("region", "seq")
    scoring.run(scoring.spec(batch_output, id_columns=ids))
    scoring.run(scoring.spec(batch_output, id_columns=ids))  # replaced, not added
    keyed = by_id(batch_output.rows(ids), ids)
    frame = scoring.frame
    expected = dict(
        zip(
            (f"{r}:{s}" for r, s in zip(frame["region"], frame["seq"], strict=True)),
            scoring.models.binary_v1.predict(frame[list(FEATURES)]),
            strict=True,
        )
    )
    assert {key: row["prediction"] for key, row in keyed.items()} == expected


def test_text_ids_are_kept_as_text(scoring: ScoringProject, batch_output: Output) -> None:
    scoring.run(scoring.spec(batch_output, id_columns=("customer",)))
    rows = batch_output.rows(("customer",))
    keyed = by_id(rows, ("customer",))
    frame = scoring.frame
    expected = dict(
        zip(frame["customer"], scoring.models.binary_v1.predict(frame[list(FEATURES)]), strict=True)
    )
    assert {key: row["prediction"] for key, row in keyed.items()} == expected
    assert all(isinstance(row["customer"], str) for row in rows)


@pytest.mark.parametrize("given", ["csv", "query"])
def test_csv_files_and_sql_queries_score_like_parquet(
    scoring: ScoringProject, batch_output: Output, given: str
) -> None:
    if given == "csv":
        spec = scoring.spec(batch_output, inputs=(scoring.csv(),), batch_rows=50)
    else:
        url = scoring.sqlite_input()
        query = f"SELECT id, {', '.join(FEATURES)} FROM customers ORDER BY id"
        spec = scoring.spec(batch_output, query=query, query_url=url, batch_rows=50)
    record = scoring.run(spec)
    assert record.rows_read == record.rows_written == ROWS
    assert_scored_by(batch_output.rows(), scoring.models.binary_v1, scoring.frame, 1, record.id)


# -- bad rows --------------------------------------------------------------------------------


def test_bad_row_stops_the_run_naming_row_and_column_and_leaves_the_output_as_it_was(
    scoring: ScoringProject, batch_output: Output
) -> None:
    before = scoring.run(scoring.spec(batch_output))
    bad = scoring.parquet("bad.parquet", with_bad_rows(scoring.frame, BAD_ROW, BAD_ROW + 40))
    spec = scoring.spec(batch_output, reference=f"{BINARY}:2", inputs=(bad,), batch_rows=25)
    with pytest.raises(BatchInputError) as caught:
        scoring.run(spec)
    message = caught.value.message
    assert f"input row {BAD_ROW} " in message and f'"id":{1000 + BAD_ROW}' in message
    assert "column 'f1' is empty or not a finite number" in message
    failed = BatchRunRepository(scoring.client.db).recent(limit=1)[0]
    assert (failed.status, failed.error, failed.version) == ("failed", message, 2)
    if isinstance(batch_output, RedisOutput):
        # Redis keeps each batch as soon as it is written: the batches before the bad row
        # stay, replaced by version 2 (reported: docs/batch.md promises nothing is written).
        return
    rows = batch_output.rows()
    assert len(rows) == ROWS and {r["batch_run_id"] for r in rows} == {before.id}
    assert {r["model_version"] for r in rows} == {1}
    assert batch_output.rejects() == []
    if isinstance(batch_output, ParquetOutput):
        assert batch_output.unpublished() == []  # no staging left behind


def test_a_first_run_that_fails_leaves_no_table_behind(
    scoring: ScoringProject, sql_output: Output
) -> None:
    bad = scoring.parquet("bad.parquet", with_bad_rows(scoring.frame, BAD_ROW))
    spec = scoring.spec(sql_output, inputs=(bad,), batch_rows=25, on_bad_rows="fail")
    with pytest.raises(BatchInputError):
        scoring.run(spec)
    assert not sql_output.has_table(str(sql_output.table))
    # Setting the bad row aside makes the output table and its rejects table.
    record = scoring.run(scoring.spec(sql_output, inputs=(bad,), on_bad_rows="skip"))
    assert (record.rows_written, record.rows_rejected) == (ROWS - 1, 1)
    assert len(sql_output.rows()) == ROWS - 1 and len(sql_output.rejects()) == 1


def test_bad_rows_are_set_aside_with_their_reason_when_skipped(
    scoring: ScoringProject, batch_output: Output
) -> None:
    frame = with_bad_rows(scoring.frame, 3, BAD_ROW, 299)
    frame.loc[BAD_ROW, "f3"] = np.nan  # two bad columns: the first one is the reason
    spec = scoring.spec(
        batch_output,
        inputs=(scoring.parquet("bad.parquet", frame),),
        on_bad_rows="skip",
        batch_rows=30,
    )
    record = scoring.run(spec)
    assert (record.status, record.rows_read, record.rows_written, record.rows_rejected) == (
        "succeeded",
        ROWS,
        ROWS - 3,
        3,
    )
    good = scoring.frame.drop(index=[3, BAD_ROW, 299])
    assert_scored_by(batch_output.rows(), scoring.models.binary_v1, good, 1, record.id)
    rejects = sorted(batch_output.rejects(), key=lambda r: int(r["row_number"]))
    assert [
        (r["batch_run_id"], int(r["row_number"]), r["row_id"], r["reason"]) for r in rejects
    ] == [
        (record.id, 3, '{"id":1003}', "column 'f1' is empty or not a finite number"),
        (record.id, 137, '{"id":1137}', "column 'f2' is empty or not a finite number"),
        (record.id, 299, '{"id":1299}', "column 'f3' is empty or not a finite number"),
    ]  # fmt: skip


def test_empty_id_is_a_bad_row(scoring: ScoringProject, batch_output: Output) -> None:
    frame = scoring.frame.copy()
    frame["customer"] = frame["customer"].astype(object)
    frame.loc[10, "customer"] = None  # an empty cell in the CSV file
    frame.loc[20, "customer"] = ""
    path = scoring.csv("ids.csv", frame)
    spec = scoring.spec(batch_output, inputs=(path,), id_columns=("customer",))
    with pytest.raises(BatchInputError, match=r"input row 10 .*id column 'customer' is empty"):
        scoring.run(spec)
    assert batch_output.rows(("customer",)) == []
    record = scoring.run(
        scoring.spec(batch_output, inputs=(path,), id_columns=("customer",), on_bad_rows="skip")
    )
    assert (record.rows_written, record.rows_rejected) == (ROWS - 2, 2)
    rejects = sorted(batch_output.rejects(), key=lambda r: int(r["row_number"]))
    assert [int(r["row_number"]) for r in rejects] == [10, 20]
    assert "" not in by_id(batch_output.rows(("customer",)), ("customer",))


# -- Redis -----------------------------------------------------------------------------------


def test_redis_keys_expire_after_the_ttl(scoring: ScoringProject) -> None:
    output = make_output("redis", scoring.root)
    try:
        assert isinstance(output, RedisOutput)
        scoring.run(scoring.spec(output, ttl_seconds=120, batch_rows=100))
        keys = output.keys()
        assert len(keys) == ROWS and f"{output.table}:1000" in keys
        ttls = {int(output.redis.ttl(key)) for key in keys}
        assert all(0 < ttl <= 120 for ttl in ttls), ttls
        scoring.run(scoring.spec(output))  # without --ttl, keys do not expire
        assert int(output.redis.ttl(f"{output.table}:1000")) == -1
    finally:
        output.close()


# -- SQL tables ------------------------------------------------------------------------------


def test_missing_table_is_created_with_column_types_and_a_primary_key(
    scoring: ScoringProject, sql_output: Output
) -> None:
    scoring.run(scoring.spec(sql_output, on_bad_rows="skip"))
    if isinstance(sql_output, SQLiteOutput):
        engine = create_engine(f"sqlite:///{sql_output.path}")
        schema = None
    else:
        assert isinstance(sql_output, PostgresOutput)
        engine = create_engine(sql_output.url)
        schema = sql_output.schema
    try:
        inspector = inspect(engine)
        columns = {
            c["name"]: (str(c["type"]).lower(), c["nullable"])
            for c in inspector.get_columns("scores", schema=schema)
        }
        key = inspector.get_pk_constraint("scores", schema=schema)["constrained_columns"]
        reject_key = inspector.get_pk_constraint("scores_rejects", schema=schema)
    finally:
        engine.dispose()
    if isinstance(sql_output, SQLiteOutput):
        assert columns == {
            "id": ("integer", False),
            "prediction": ("bigint", True),
            "probability": ("float", True),
            "model": ("text", False),
            "model_version": ("integer", False),
            "batch_run_id": ("text", False),
            "scored_at": ("datetime", False),
        }
    else:
        assert isinstance(sql_output, PostgresOutput)
        found = sql_output.query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'scores' ORDER BY ordinal_position",
            (sql_output.schema,),
        )
        assert [(c["column_name"], c["data_type"], c["is_nullable"]) for c in found] == [
            ("id", "bigint", "NO"),
            ("prediction", "bigint", "YES"),
            ("probability", "double precision", "YES"),
            ("model", "text", "NO"),
            ("model_version", "integer", "NO"),
            ("batch_run_id", "text", "NO"),
            ("scored_at", "timestamp with time zone", "NO"),
        ]
    assert list(columns) == ["id", *OUTPUT_COLUMNS[:1], "probability", *OUTPUT_COLUMNS[1:]]
    assert key == ["id"]
    assert reject_key["constrained_columns"] == ["batch_run_id", "row_number"]


COLUMNS_THAT_FIT = {  # name: (declared type, value of the one row already in the table)
    "id": ("BIGINT NOT NULL", "1000"),
    "prediction": ("BIGINT", "7"),
    "probability": ("DOUBLE PRECISION", "0.5"),
    "model": ("TEXT NOT NULL", "'other'"),
    "model_version": ("INTEGER NOT NULL", "9"),
    "batch_run_id": ("TEXT NOT NULL", "'someone'"),
    "scored_at": ("TIMESTAMP", "'2020-01-01 00:00:00'"),
}
TABLES_THAT_DO_NOT_FIT: dict[str, tuple[dict[str, tuple[str, str] | None], bool, str]] = {
    "wrong type": (
        {"prediction": ("TEXT", "'x'")},
        True,
        "column 'prediction' of table .*scores in .* is TEXT, but batch scoring writes integer",
    ),
    "missing column": ({"probability": None}, True, "has no column 'probability'"),
    "no primary key": ({}, False, r"has no primary key or unique index on \(id\)"),
    "required extra column": (
        {"note": ("TEXT NOT NULL", "'kept'")},
        True,
        "has a required column 'note' that batch scoring does not fill",
    ),
}


def scores_table(output: Output) -> tuple[SQLiteOutput | PostgresOutput, str]:
    """The SQL output and its table in SQL (in PostgreSQL, in the test's own schema)."""
    assert isinstance(output, SQLiteOutput | PostgresOutput)
    return output, "scores" if isinstance(output, SQLiteOutput) else '"{schema}".scores'


def create_table(output: Output, columns: dict[str, tuple[str, str]], key: bool) -> None:
    sql, table = scores_table(output)
    body = ", ".join(f"{name} {kind}" for name, (kind, _) in columns.items())
    values = ", ".join(value for _, value in columns.values())
    sql.execute(
        f"CREATE TABLE {table} ({body}{', PRIMARY KEY (id)' if key else ''})",
        f"INSERT INTO {table} VALUES ({values})",
    )


@pytest.mark.parametrize("problem", sorted(TABLES_THAT_DO_NOT_FIT))
def test_existing_table_that_does_not_fit_is_refused_before_anything_is_written(
    scoring: ScoringProject, sql_output: Output, problem: str
) -> None:
    changes, key, message = TABLES_THAT_DO_NOT_FIT[problem]
    columns = dict(COLUMNS_THAT_FIT)
    for name, change in changes.items():
        if change is None:
            del columns[name]
        else:
            columns[name] = change
    create_table(sql_output, columns, key)
    before = sql_output.rows()
    assert len(before) == 1
    with pytest.raises(BatchOutputError, match=message) as caught:
        scoring.run(scoring.spec(sql_output))
    assert sql_output.rows() == before
    (failed,) = BatchRunRepository(scoring.client.db).recent()
    assert (failed.status, failed.rows_written, failed.error) == ("failed", 0, caught.value.message)


def test_existing_table_with_extra_nullable_column_and_unique_index_is_written(
    scoring: ScoringProject, sql_output: Output
) -> None:
    sql, table = scores_table(sql_output)
    sql.execute(
        f"CREATE TABLE {table} (note TEXT, id BIGINT NOT NULL, prediction DOUBLE PRECISION, "
        "probability DOUBLE PRECISION, model TEXT, model_version BIGINT, batch_run_id TEXT, "
        "scored_at TIMESTAMP)",
        f"CREATE UNIQUE INDEX scores_by_id ON {table} (id)",
    )
    record = scoring.run(scoring.spec(sql_output))
    rows = sql_output.rows()
    assert len(rows) == ROWS and {r["note"] for r in rows} == {None}
    keyed = by_id(rows)
    for row_id, prediction in expected_predictions(scoring.models.binary_v1, scoring.frame).items():
        assert keyed[str(row_id)]["prediction"] == prediction
    assert {r["batch_run_id"] for r in rows} == {record.id}


def test_rerun_gives_replaced_rows_the_defaults_of_columns_the_run_does_not_write(
    scoring: ScoringProject, sql_output: Output
) -> None:
    sql, table = scores_table(sql_output)
    sql.execute(
        f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, prediction BIGINT, "
        "probability DOUBLE PRECISION, model TEXT NOT NULL, model_version INTEGER NOT NULL, "
        "batch_run_id TEXT NOT NULL, scored_at TIMESTAMP NOT NULL, "
        "note TEXT DEFAULT 'unread', reviewer TEXT)"
    )
    scoring.run(scoring.spec(sql_output))
    sql.execute(f"UPDATE {table} SET note = 'read', reviewer = 'ana'")
    extra = scoring.frame.assign(id=scoring.frame["id"] + 10_000).head(20)
    both = pd.concat([scoring.frame, extra], ignore_index=True)
    second = scoring.run(scoring.spec(sql_output, inputs=(scoring.parquet("more.parquet", both),)))
    rows = sql_output.rows()
    assert len(rows) == ROWS + 20
    assert {(r["note"], r["reviewer"]) for r in rows} == {("unread", None)}
    assert {r["batch_run_id"] for r in rows} == {second.id}
    assert second.rows_written == ROWS + 20


def test_sqlite_rerun_into_a_table_with_a_trigger(scoring: ScoringProject) -> None:
    # The trigger's own changes are not the run's: they must not look like repeated ids.
    output = SQLiteOutput(scoring.root)
    scoring.run(scoring.spec(output))
    output.execute(
        "CREATE TABLE audit (id INTEGER, old_run TEXT)",
        "CREATE TRIGGER keep_old AFTER UPDATE ON scores BEGIN "
        "INSERT INTO audit VALUES (old.id, old.batch_run_id); END",
    )
    first_ids = {r["batch_run_id"] for r in output.rows()}
    second = scoring.run(scoring.spec(output))
    assert {r["batch_run_id"] for r in output.rows()} == {second.id}
    audit = output.query("SELECT count(*) AS n, count(DISTINCT old_run) AS runs FROM audit")
    assert audit == [{"n": ROWS, "runs": 1}] and first_ids != {second.id}


# -- Parquet datasets ------------------------------------------------------------------------


def test_parquet_output_keeps_one_partition_per_input(scoring: ScoringProject) -> None:
    output = ParquetOutput(scoring.root)
    first = scoring.run(scoring.spec(output))
    other = scoring.frame.assign(id=scoring.frame["id"] + 10_000)
    second = scoring.run(scoring.spec(output, inputs=(scoring.parquet("other.parquet", other),)))
    assert first.input_fingerprint != second.input_fingerprint
    partitions = sorted(p.name for p in output.folder.glob("input=*"))
    assert partitions == sorted(
        f"input={r.input_fingerprint[:16]}" for r in (first, second)
    )  # fmt: skip
    assert len(by_id(output.rows())) == 2 * ROWS
    scoring.run(scoring.spec(output))  # the first input again: its partition is replaced
    assert len(by_id(output.rows())) == 2 * ROWS
    assert output.unpublished() == []


def test_parquet_dataset_of_other_columns_is_refused(scoring: ScoringProject) -> None:
    output = ParquetOutput(scoring.root)
    scoring.run(scoring.spec(output))
    before = output.rows()
    with pytest.raises(BatchOutputError, match=r"has other columns .* than this job writes"):
        scoring.run(scoring.spec(output, reference=f"{MULTI}:1"))
    assert output.rows() == before


def test_parquet_dataset_reads_back_with_plain_column_types(scoring: ScoringProject) -> None:
    output = ParquetOutput(scoring.root)
    scoring.run(scoring.spec(output))
    (part,) = output.partition_files()
    schema = pq.read_schema(part)
    assert {f.name: (f.type, f.nullable) for f in schema} == {
        "id": (pa.int64(), True),
        "prediction": (pa.int64(), True),
        "probability": (pa.float64(), True),
        "model": (pa.string(), False),
        "model_version": (pa.int32(), False),
        "batch_run_id": (pa.string(), False),
        "scored_at": (pa.timestamp("us", tz="UTC"), False),
    }
    frame = pd.read_parquet(part)  # texts, not categories, in pandas too
    for column in ("model", "batch_run_id"):
        assert pd.api.types.is_string_dtype(frame[column].dtype)
        assert not isinstance(frame[column].dtype, pd.CategoricalDtype)
    assert set(frame["model"]) == {BINARY}


def test_parquet_dataset_keeps_id_types_that_only_arrow_can_name(scoring: ScoringProject) -> None:
    # A time zone other than UTC and large strings read back otherwise from Parquet's own
    # types: such a dataset keeps Arrow's schema in its files, and a re-run still fits.
    frame = scoring.frame.assign(
        seen=pd.date_range("2026-01-01", periods=ROWS, freq="min", tz="Europe/Berlin"),
        code=[f"c{i}" for i in range(ROWS)],
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(
        table.schema.get_field_index("code"), "code", table["code"].cast(pa.large_string())
    )
    path = scoring.root / "data" / "typed.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    output = ParquetOutput(scoring.root)
    spec = scoring.spec(output, inputs=(str(path),), id_columns=("seen", "code"))
    scoring.run(spec)
    scoring.run(spec)
    (part,) = output.partition_files()
    schema = pq.read_schema(part)
    assert schema.field("seen").type == table.schema.field("seen").type
    assert schema.field("seen").type.tz == "Europe/Berlin"
    assert schema.field("code").type == pa.large_string()
    assert schema.field("model").type == pa.string()
    assert len(output.rows(("seen", "code"))) == ROWS


def test_probabilities_are_numbers_in_every_output(
    scoring: ScoringProject, batch_output: Output
) -> None:
    scoring.run(scoring.spec(batch_output))
    values = [row["probability"] for row in batch_output.rows()]
    assert all(isinstance(v, float) and math.isfinite(v) and 0 <= v <= 1 for v in values)

"""``--engine spark``: the same job scored on Spark (local mode), with the same outputs,
records and exactly-once writes as the local engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import create_engine, text

from modelrail.batch.runner import run_batch
from modelrail.batch.scorer import RunStamp, ScoredBatch
from modelrail.batch.sinks.parquet import ParquetSink
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import BatchInputError, BatchOutputError
from tests.batch.conftest import postgres_base_url
from tests.conftest import postgres_schema_url

pyspark = pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow
FEATURES = [f"f{i}" for i in range(4)]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local Spark for the module: starting the JVM costs seconds."""
    from modelrail.batch.spark import spark_session

    session = spark_session(JobSpec(reference="x", output="x", id_columns=("id",), inputs=("x",)))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Client, LogisticRegression]]:
    init_project(tmp_path)
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(300, len(FEATURES))), columns=FEATURES)
    model = LogisticRegression().fit(X, (X["f0"] + X["f1"] > 0).astype(int))
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings, user="tester") as client:
        with client.start_run("spark") as run:
            run.log_model(model, "sparked", input_example=X[:5])
        yield client, model


def _input(folder: Path, rows: int, files: int = 3, *, csv: bool = False) -> pd.DataFrame:
    folder.mkdir()
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "id", np.arange(rows, dtype=np.int64))
    for index, rows_of_part in enumerate(np.array_split(np.arange(rows), files)):
        part = frame.iloc[rows_of_part]
        if csv:
            part.to_csv(folder / f"part-{index}.csv", index=False)
        else:
            pq.write_table(
                pa.Table.from_pandas(part, preserve_index=False), folder / f"p{index}.parquet"
            )
    return frame


def _spec(inputs: Path, output: str, **extra: Any) -> JobSpec:
    return JobSpec(
        reference="sparked",
        inputs=(str(inputs),),
        output=output,
        table="scores",
        id_columns=("id",),
        engine="spark",
        batch_rows=1000,
        **extra,
    )


def test_spark_scores_like_the_model_and_writes_one_row_per_input_row(
    spark: Any, project: tuple[Client, LogisticRegression], tmp_path: Path
) -> None:
    client, model = project
    frame = _input(tmp_path / "in", 5000)
    record = run_batch(client, _spec(tmp_path / "in", f"sqlite:///{tmp_path / 'out.db'}"))
    assert (record.status, record.engine, record.rows_read, record.rows_written) == (
        "succeeded", "spark", 5000, 5000,
    )  # fmt: skip
    with sqlite3.connect(tmp_path / "out.db") as db:
        rows = db.execute(
            "SELECT id, prediction, probability, model, model_version, batch_run_id "
            "FROM scores ORDER BY id"
        ).fetchall()
    assert [r[0] for r in rows] == list(range(5000))
    expected = model.predict(frame[FEATURES])
    assert [r[1] for r in rows] == expected.tolist()
    np.testing.assert_allclose([r[2] for r in rows], model.predict_proba(frame[FEATURES])[:, 1])
    assert {(r[3], r[4], r[5]) for r in rows} == {("sparked", 1, record.id)}


def test_spark_rerun_on_csv_into_parquet_replaces_the_partition(
    spark: Any, project: tuple[Client, LogisticRegression], tmp_path: Path
) -> None:
    client, _ = project
    _input(tmp_path / "in", 2000, csv=True)
    spec = _spec(tmp_path / "in", str(tmp_path / "scores"))
    first = run_batch(client, spec)
    second = run_batch(client, spec)
    table = pq.read_table(tmp_path / "scores")
    assert table.num_rows == 2000
    assert set(table.column("batch_run_id").to_pylist()) == {second.id}
    assert first.input_fingerprint == second.input_fingerprint != ""


def test_spark_bad_row_stops_the_run_and_writes_nothing(
    spark: Any, project: tuple[Client, LogisticRegression], tmp_path: Path
) -> None:
    client, _ = project
    folder = tmp_path / "in"
    frame = _input(folder, 1000, files=1)
    frame.loc[700, "f2"] = np.nan
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "p0.parquet")
    output = tmp_path / "out.db"
    with pytest.raises(BatchInputError, match="'f2'"):
        run_batch(client, _spec(folder, f"sqlite:///{output}"))
    with sqlite3.connect(output) as db:  # not even an empty table
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
    (failed,) = client_runs(client)
    assert failed.status == "failed" and "'f2'" in (failed.error or "")


def test_spark_skips_bad_rows_into_the_rejects_table(
    spark: Any, project: tuple[Client, LogisticRegression], tmp_path: Path
) -> None:
    client, _ = project
    folder = tmp_path / "in"
    frame = _input(folder, 1000, files=1)
    frame.loc[[5, 900], "f1"] = np.nan
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "p0.parquet")
    output = tmp_path / "out.db"
    record = run_batch(client, _spec(folder, f"sqlite:///{output}", on_bad_rows="skip"))
    assert (record.rows_written, record.rows_rejected) == (998, 2)
    with sqlite3.connect(output) as db:
        rejected = db.execute(
            "SELECT row_id, reason FROM scores_rejects ORDER BY row_id"
        ).fetchall()
    assert [r[0] for r in rejected] == ['{"id":5}', '{"id":900}']
    assert all("'f1'" in r[1] for r in rejected)


def test_spark_executors_write_the_parquet_parts_and_rejects_themselves(
    spark: Any, project: tuple[Client, LogisticRegression], tmp_path: Path
) -> None:
    client, model = project
    frame = _input(tmp_path / "in", 3000, files=3)
    bad = [10, 1500, 2999]
    frame.loc[bad, "f3"] = np.nan
    for index in range(3):
        part = frame.iloc[index * 1000 : (index + 1) * 1000]
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False), tmp_path / "in" / f"p{index}.parquet"
        )
    record = run_batch(client, _spec(tmp_path / "in", str(tmp_path / "scores"), on_bad_rows="skip"))
    assert (record.rows_read, record.rows_written, record.rows_rejected) == (3000, 2997, 3)
    (partition,) = (tmp_path / "scores").glob("input=*")
    # One part per Spark partition, named after its first row's number; nothing staged is left.
    partitions = spark.read.parquet(str(tmp_path / "in")).rdd.getNumPartitions()
    names = sorted(path.name for path in partition.iterdir())
    assert len(names) == partitions and all(name.startswith("part-") for name in names)
    assert [p.name for p in (tmp_path / "scores").iterdir() if p.name.startswith(".")] == [".runs"]
    assert [p.name for p in (tmp_path / "scores" / ".runs").iterdir()] == [record.id]
    table = pq.read_table(tmp_path / "scores").to_pandas().sort_values("id")
    kept = frame.drop(index=bad)
    assert table["id"].tolist() == kept["id"].tolist()
    assert table["prediction"].tolist() == model.predict(kept[FEATURES]).tolist()
    assert set(table["batch_run_id"]) == {record.id}
    rejects = pq.read_table(tmp_path / "scores" / "_rejects" / f"run={record.id}")
    assert sorted(rejects.column("row_id").to_pylist()) == sorted(f'{{"id":{i}}}' for i in bad)


def test_parquet_publishes_what_executors_wrote_and_no_failed_attempt(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.int64()), ("prediction", pa.int64())])
    sink = ParquetSink(tmp_path / "out")
    sink.prepare(schema, ("id",), with_rejects=False)
    writer = sink.open(RunStamp("m", 1, "run-1"), None)
    parts = writer.staged_parts()

    def scored(fail_at: int | None = None) -> Iterator[tuple[int, ScoredBatch]]:
        for start in (0, 10, 20):
            if start == fail_at:
                raise BatchOutputError("the executor's disk is full")
            ids = np.arange(start, start + 10)
            yield start, ScoredBatch(pa.record_batch([ids, ids % 2], schema=schema), None, 10)

    with pytest.raises(BatchOutputError, match="disk is full"):
        parts.write(scored(fail_at=20), attempt=0)
    name, read, written, rejected = parts.write(scored(), attempt=1)
    assert (read, written, rejected) == (30, 30, 0)
    with pytest.raises(BatchOutputError, match="driver and every executor share"):
        writer.adopt([name, "part-000099.parquet"])
    writer.adopt([name])
    writer.commit("f" * 64)
    partition = tmp_path / "out" / f"input={'f' * 16}"
    assert [path.name for path in partition.iterdir()] == [name]
    assert sorted(pq.read_table(tmp_path / "out").column("id").to_pylist()) == list(range(30))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def query_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database holding ``t(id, f0..f3)``: 5,000 rows, ``f1`` NULL on rows 5 and 3100."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'source.db'}"])
    else:
        urls = postgres_schema_url(postgres_base_url())
    url = next(urls)
    rng = np.random.default_rng(5)
    values = rng.normal(size=(5000, len(FEATURES)))
    rows = [
        {"id": i, **{name: float(values[i, k]) for k, name in enumerate(FEATURES)}}
        for i in range(5000)
    ]
    rows[5]["f1"] = rows[3100]["f1"] = None
    engine = create_engine(url)
    with engine.begin() as conn:
        columns = ", ".join(f"{name} DOUBLE PRECISION" for name in FEATURES)
        conn.execute(text(f"CREATE TABLE t (id BIGINT, {columns})"))
        names = ", ".join(f":{name}" for name in FEATURES)
        conn.execute(text(f"INSERT INTO t VALUES (:id, {names})"), rows)
    engine.dispose()
    yield url
    for _ in urls:  # drops the PostgreSQL schema
        pass


def test_spark_scores_a_query_as_the_local_engine_does(
    spark: Any, project: tuple[Client, LogisticRegression], tmp_path: Path, query_url: str
) -> None:
    client, model = project
    outputs = {}
    for engine in ("spark", "local"):
        output = tmp_path / f"{engine}.db"
        spec = JobSpec(
            reference="sparked",
            query="SELECT * FROM t ORDER BY id",
            query_url=query_url,
            output=f"sqlite:///{output}",
            table="scores",
            id_columns=("id",),
            engine=engine,  # type: ignore[arg-type]
            batch_rows=700,
            on_bad_rows="skip",
        )
        record = run_batch(client, spec)
        assert (record.status, record.engine) == ("succeeded", engine)
        assert (record.rows_read, record.rows_written, record.rows_rejected) == (5000, 4998, 2)
        with sqlite3.connect(output) as db:
            scores = db.execute("SELECT id, prediction, probability FROM scores ORDER BY id")
            rejects = db.execute("SELECT row_number, row_id FROM scores_rejects ORDER BY 1")
            outputs[engine] = (scores.fetchall(), rejects.fetchall())
    spark_scores, spark_rejects = outputs["spark"]
    assert spark_rejects == outputs["local"][1] == [(5, '{"id":5}'), (3100, '{"id":3100}')]
    assert [row[:2] for row in spark_scores] == [row[:2] for row in outputs["local"][0]]
    source = create_engine(query_url)
    with source.connect() as conn:
        frame = pd.read_sql(text("SELECT * FROM t ORDER BY id"), conn).dropna()
    source.dispose()
    assert [row[0] for row in spark_scores] == frame["id"].tolist()
    assert [row[1] for row in spark_scores] == model.predict(frame[FEATURES]).tolist()
    np.testing.assert_allclose(
        [row[2] for row in spark_scores], model.predict_proba(frame[FEATURES])[:, 1]
    )


def client_runs(client: Client) -> list[Any]:
    from modelrail.store.batch_runs_repo import BatchRunRepository

    return BatchRunRepository(client.db).recent()

"""One conformance matrix: every model family gives the same predictions and probabilities for
the same rows on every path a version takes to production:

in-process ``load_model`` | ``/v1/models/NAME/predict`` (records, split) | ``/invocations``
(split, records, CSV) | batch into SQLite | batch into PostgreSQL | batch on Spark.

Each case is a model people train, on data with what real data has (text categories, missing
values, string class labels): statsmodels' ``fair`` survey, scikit-learn's iris and diabetes.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from modelrail.batch.runner import run_batch
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.scoring.forms.record import PROBABILITY_ATOL, VALUE_RTOL
from modelrail.serving.server import ServeOptions
from tests.batch.conftest import postgres_base_url
from tests.conformance_cases import CASES, Case
from tests.conftest import postgres_schema_url
from tests.serving.conftest import RunningServer, running_server

pytestmark = pytest.mark.slow
ROWS = 60  # scored on every path: enough for every class and every missing-value pattern


@dataclass
class Answers:
    """What one path answered: labels (or values) and class probabilities, row by row."""

    predictions: list[Any]
    probabilities: np.ndarray | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Registered:
    case: Case
    client: Client
    root: Path
    reference: str
    rows: pd.DataFrame  # the features, as the model takes them
    expected: Answers


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark")
    from modelrail.batch.spark import spark_session

    spec = JobSpec(reference="x", output="x", id_columns=("id",), inputs=("x",))
    session = spark_session(spec)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def registered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registered]:
    case: Case = request.param
    built = case.build(tmp_path)
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings, user="tester") as client:
        version = client.register_model(
            built.model, case.name, input_example=built.example, **built.log_options
        )
        assert version.flavor == case.flavor, version.flavor
        rows = built.rows.iloc[:ROWS]
        expected = Answers(
            list(np.asarray(built.predict(rows)).tolist()),
            None if built.predict_proba is None else np.asarray(built.predict_proba(rows)),
        )
        yield Registered(case, client, tmp_path, f"{case.name}:1", rows, expected)


def _same(path: str, found: Answers, expected: Answers, case: Case, *, form: bool = True) -> None:
    """``form``: the path may run a verified predictor form, which reproduces the model within
    the stated tolerance (identical labels, probabilities to PROBABILITY_ATOL, values to
    VALUE_RTOL) rather than bit for bit."""
    if case.regression:
        wanted = np.asarray(expected.predictions, dtype=float)
        scale = float(np.nanmax(np.abs(wanted))) if form else 0.0
        np.testing.assert_allclose(
            np.asarray(found.predictions, dtype=float),
            wanted,
            rtol=max(case.tolerance, VALUE_RTOL) if form else case.tolerance,
            atol=VALUE_RTOL * scale,
            err_msg=path,
        )
    else:
        assert found.predictions == expected.predictions, path
    if expected.probabilities is not None:
        assert found.probabilities is not None, f"{path}: no probabilities"
        np.testing.assert_allclose(
            found.probabilities,
            expected.probabilities,
            rtol=case.tolerance,
            atol=PROBABILITY_ATOL if form else 1e-12,
            err_msg=path,
        )


def _records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them in JSON: dates as ISO 8601 text, missing values as null."""
    plain = rows.astype(object).where(rows.notna(), None)
    for name in rows.columns:
        if pd.api.types.is_datetime64_any_dtype(rows[name]):
            plain[name] = [None if pd.isna(t) else t.isoformat() for t in rows[name]]
    return plain.to_dict("records")


def _split(rows: pd.DataFrame) -> dict[str, Any]:
    return {"columns": list(rows.columns), "data": [list(r.values()) for r in _records(rows)]}


def _from_reply(path: str, reply: Any) -> Answers:
    assert reply.status == 200, f"{path}: {reply.text}"
    body = reply.json()
    probabilities = body.get("probabilities")
    return Answers(
        body["predictions"], None if probabilities is None else np.asarray(probabilities)
    )


def test_every_path_gives_the_same_answers(registered: Registered, spark: Any) -> None:
    case, rows, expected = registered.case, registered.rows, registered.expected

    loaded = registered.client.load_model(registered.reference)
    proba = loaded.predict_proba(rows)
    in_process = Answers(
        np.asarray(loaded.predict(rows)).tolist(), None if case.regression else proba
    )
    _same("load_model", in_process, expected, case, form=False)

    options = ServeOptions(references=(registered.reference,))
    with running_server(registered.client.settings, options) as server:
        for path, answer in _served(server, case.name, rows).items():
            _same(path, answer, expected, case)

    inputs = _input_file(registered.root, rows)
    for path, answer in _batched(registered, inputs, spark).items():
        _same(path, answer, expected, case)


def _served(server: RunningServer, name: str, rows: pd.DataFrame) -> dict[str, Answers]:
    native = f"/v1/models/{name}/predict"
    csv = io.StringIO()
    rows.to_csv(csv, index=False)
    split = _split(rows)
    return {
        "predict records": _from_reply("records", server.post(native, {"inputs": _records(rows)})),
        "predict split": _from_reply("split", server.post(native, split)),
        "invocations split": _from_reply(
            "invocations split", server.post("/invocations", {"dataframe_split": split})
        ),
        "invocations records": _from_reply(
            "invocations records",
            server.post("/invocations", {"dataframe_records": _records(rows)}),
        ),
        "invocations csv": _from_reply(
            "invocations csv",
            server.post("/invocations", csv.getvalue(), content_type="text/csv"),
        ),
    }


def _input_file(root: Path, rows: pd.DataFrame) -> Path:
    frame = rows.reset_index(drop=True).copy()
    frame.insert(0, "row_id", np.arange(len(frame), dtype=np.int64))
    path = root / "conformance.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path


def _batched(registered: Registered, inputs: Path, spark: Any) -> dict[str, Answers]:
    found: dict[str, Answers] = {}
    for engine in ("local", "spark"):
        database = registered.root / f"scores-{engine}.db"
        _run(registered, inputs, f"sqlite:///{database}", engine)
        with sqlite3.connect(database) as conn:
            conn.row_factory = sqlite3.Row
            table = [dict(r) for r in conn.execute("SELECT * FROM scores ORDER BY row_id")]
        conn.close()
        found[f"batch sqlite {engine}"] = _from_table(registered, table)
    for base in _postgres():
        for url in postgres_schema_url(base):
            _run(registered, inputs, url, "local")
            engine_ = create_engine(url)
            with engine_.connect() as conn:
                result = conn.execute(text("SELECT * FROM scores ORDER BY row_id"))
                table = [dict(r._mapping) for r in result]
            engine_.dispose()
            found["batch postgres"] = _from_table(registered, table)
    return found


def _postgres() -> list[str]:
    try:
        return [postgres_base_url()]
    except pytest.skip.Exception:
        return []


def _run(registered: Registered, inputs: Path, output: str, engine: str) -> None:
    spec = JobSpec(
        reference=registered.reference,
        inputs=(str(inputs),),
        output=output,
        table="scores",
        id_columns=("row_id",),
        engine=engine,
    )
    record = run_batch(registered.client, spec)
    assert (record.rows_written, record.rows_rejected) == (len(registered.rows), 0), engine


def _from_table(registered: Registered, table: list[dict[str, Any]]) -> Answers:
    case = registered.case
    outputs = [c for c in table[0] if c == "prediction" or c.startswith("prediction_")]
    if outputs == ["prediction"]:
        predictions = [row["prediction"] for row in table]
    else:  # a multi-output model: one column per output
        predictions = [[row[c] for c in outputs] for row in table]
    if case.regression or registered.expected.probabilities is None:
        return Answers(predictions)
    classes = registered.client.get_model_version(registered.reference).signature.classes
    if len(classes) == 2:
        p = np.array([row["probability"] for row in table], dtype=float)
        probabilities = np.column_stack([1 - p, p])
    else:
        columns = [c for c in table[0] if c.startswith("probability_")]
        probabilities = np.array([[row[c] for c in columns] for row in table], dtype=float)
    labels = [_typed(v, classes) for v in predictions]
    return Answers(labels, probabilities)


def _typed(value: Any, classes: tuple[Any, ...]) -> Any:
    """A label as stored in a table (SQLite keeps booleans as 0/1) in its class's type."""
    for known in classes:
        if value == known or str(value) == str(known):
            return known
    return value

"""No made-up answers: a score that comes out NaN or infinite is a 422 naming the row, never a
prediction; JSON true / false (and CSV's) are numbers only in a boolean column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.serving.server import ServeOptions
from tests.serving.conftest import RunningServer, Zoo, records, running_server

PREDICT = "/v1/models/cancer/predict"


def _huge(zoo: Zoo) -> list[dict[str, float]]:
    rows = records(zoo.rows("cancer", count=2))
    rows[1] = {name: 1e308 for name in rows[1]}  # finite, and far outside the training data
    return rows


@pytest.mark.parametrize("protocol", ["records", "columns and data", "instances", "csv"])
def test_a_score_that_overflows_is_refused_naming_the_row(
    cancer_server: RunningServer, zoo: Zoo, protocol: str
) -> None:
    rows = _huge(zoo)
    columns = list(rows[0])
    if protocol == "records":
        reply = cancer_server.post(PREDICT, {"inputs": rows})
    elif protocol == "columns and data":
        body = {"columns": columns, "data": [list(r.values()) for r in rows]}
        reply = cancer_server.post(PREDICT, body)
    elif protocol == "instances":
        reply = cancer_server.post("/invocations", {"instances": [list(r.values()) for r in rows]})
    else:
        csv = pd.DataFrame(rows).to_csv(index=False)
        reply = cancer_server.post("/invocations", csv, content_type="text/csv")
    assert reply.status == 422, reply.text
    error = reply.json()
    assert error["field"] == "inputs[1]"
    assert "row 1" in error["error"] and "not a finite number" in error["error"]
    assert "predictions" not in error


def test_rows_that_score_finitely_still_answer(cancer_server: RunningServer, zoo: Zoo) -> None:
    rows = _huge(zoo)[:1]
    reply = cancer_server.post(PREDICT, {"inputs": rows})
    assert reply.status == 200, reply.text
    assert np.isfinite(reply.json()["probabilities"]).all()


@pytest.mark.parametrize("literal", [True, False])
@pytest.mark.parametrize("shape", ["records", "columns and data", "instances", "records mlflow"])
def test_a_json_boolean_in_a_number_column_is_refused_naming_it(
    cancer_server: RunningServer, zoo: Zoo, literal: bool, shape: str
) -> None:
    rows: list[dict[str, Any]] = records(zoo.rows("cancer", count=2))
    rows[1]["mean texture"] = literal
    if shape == "records":
        reply = cancer_server.post(PREDICT, {"inputs": rows})
    elif shape == "columns and data":
        body = {"columns": list(rows[0]), "data": [list(r.values()) for r in rows]}
        reply = cancer_server.post(PREDICT, body)
    elif shape == "instances":
        reply = cancer_server.post("/invocations", {"instances": [list(r.values()) for r in rows]})
    else:
        reply = cancer_server.post("/invocations", {"dataframe_records": rows})
    assert reply.status == 422, reply.text
    error = reply.json()
    assert error["field"] == "mean texture"
    assert "row 1" in error["error"] and str(literal).lower() in error["error"]


def test_a_csv_boolean_in_a_number_column_is_refused_naming_it(
    cancer_server: RunningServer, zoo: Zoo
) -> None:
    frame = zoo.rows("cancer", count=2).copy().astype(object)
    frame["mean area"] = ["true", "false"]
    reply = cancer_server.post("/invocations", frame.to_csv(index=False), content_type="text/csv")
    assert reply.status == 422, reply.text
    assert reply.json()["field"] == "mean area"


@pytest.fixture(scope="module")
def flag_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A model with a boolean column beside a number column."""
    root: Path = tmp_path_factory.mktemp("flag-project")
    init_project(root)
    settings = load_settings(cwd=root, environ={}, create=False)
    rng = np.random.default_rng(2)
    X = pd.DataFrame({"amount": rng.normal(size=200), "member": rng.random(200) > 0.5})
    y = ((X["amount"] > 0) ^ X["member"]).astype(int)
    with Client(settings=settings, user="tester") as client:
        version = client.register_model(LogisticRegression().fit(X, y), "flag", input_example=X[:5])
    assert [c.dtype for c in version.signature.inputs] == ["float64", "bool"]
    with running_server(settings, ServeOptions(references=("flag:1",))) as server:
        yield server


def test_a_boolean_column_takes_true_and_false_and_other_columns_do_not(
    flag_server: RunningServer,
) -> None:
    good = flag_server.post(
        "/v1/models/flag/predict",
        {"inputs": [{"amount": 0.5, "member": True}, {"amount": -0.5, "member": False}]},
    )
    assert good.status == 200, good.text
    assert len(good.json()["predictions"]) == 2
    csv = "amount,member\n0.5,true\n-0.5,false\n"
    assert flag_server.post("/invocations", csv, content_type="text/csv").status == 200
    bad = flag_server.post(
        "/v1/models/flag/predict", {"inputs": [{"amount": True, "member": True}]}
    )
    assert bad.status == 422 and bad.json()["field"] == "amount"

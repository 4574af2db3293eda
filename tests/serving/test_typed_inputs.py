"""Inputs of every type over HTTP: text columns, missing values where the model takes them,
string class labels; every protocol answers what the model itself answers for the same rows.
The data is statsmodels' ``fair`` survey with its occupation codes as text."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.scoring.forms.record import PROBABILITY_ATOL
from modelrail.serving.server import ServeOptions
from tests.serving.conftest import RunningServer, running_server

NUMBERS = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]


@dataclass
class Fair:
    frame: pd.DataFrame
    target: pd.Series
    models: dict[str, Any]


def _fair() -> tuple[pd.DataFrame, pd.Series]:
    data = sm.datasets.fair.load_pandas().data
    frame = data[NUMBERS].copy()
    frame["occupation"] = "occ" + data["occupation"].astype(int).astype(str)
    frame["occupation_husb"] = "occ" + data["occupation_husb"].astype(int).astype(str)
    return frame, (data["affairs"] > 0).astype(int)


@pytest.fixture(scope="module")
def fair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fair, RunningServer]]:
    frame, target = _fair()
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["occupation", "occupation_husb"]),
            ("numbers", StandardScaler(), NUMBERS),
        ]
    )
    with_gaps = frame[NUMBERS].copy()
    with_gaps.loc[::7, "age"] = np.nan
    models: dict[str, Any] = {
        "pipeline": make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame, target),
        "gaps": HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(with_gaps, target),
        "linear": LogisticRegression(max_iter=500).fit(frame[NUMBERS], target),
        "labels": make_pipeline(encode, LogisticRegression(max_iter=500)).fit(
            frame.drop(columns=["occupation"]).assign(occupation=frame["occupation"]),
            frame["occupation"],
        ),
    }
    root: Path = tmp_path_factory.mktemp("fair-project")
    init_project(root)
    settings = load_settings(cwd=root, environ={}, create=False)
    with Client(settings=settings, user="tester") as client:
        client.register_model(models["pipeline"], "pipeline", input_example=frame[:5])
        client.register_model(models["gaps"], "gaps", input_example=with_gaps[:5])
        client.register_model(models["linear"], "linear", input_example=frame[NUMBERS][:5])
        labels_input = frame.drop(columns=["occupation"]).assign(occupation=frame["occupation"])
        client.register_model(models["labels"], "labels", input_example=labels_input[:5])
    refs = ("pipeline:1", "gaps:1", "linear:1", "labels:1")
    with running_server(settings, ServeOptions(references=refs)) as server:
        yield Fair(frame, target, models), server


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


def _assert_answers(reply: Any, model: Any, rows: pd.DataFrame, protocol: str) -> None:
    assert reply.status == 200, (protocol, reply.text)
    body = reply.json()
    assert body["predictions"] == model.predict(rows).tolist(), protocol
    np.testing.assert_allclose(
        body["probabilities"],
        model.predict_proba(rows),
        rtol=0,
        atol=PROBABILITY_ATOL,  # a verified predictor form's tolerance
        err_msg=protocol,
    )


def test_a_pipeline_over_text_columns_answers_as_the_model_does(
    fair: tuple[Fair, RunningServer],
) -> None:
    data, server = fair
    rows = data.frame.iloc[200:230]
    model = data.models["pipeline"]
    split = {"columns": list(rows.columns), "data": rows.values.tolist()}
    reordered = {
        "columns": list(rows.columns[::-1]),
        "data": rows[rows.columns[::-1]].values.tolist(),
    }
    for protocol, body in [
        ("records", {"inputs": _records(rows)}),
        ("split", split),
        ("reordered", reordered),
    ]:
        _assert_answers(server.post("/v1/models/pipeline/predict", body), model, rows, protocol)


def test_mlflow_protocols_with_text_columns_answer_as_the_model_does(
    fair: tuple[Fair, RunningServer], tmp_path: Path
) -> None:
    """/invocations needs a server of one model: the pipeline alone."""
    data, _ = fair
    rows = data.frame.iloc[300:320]
    model = data.models["pipeline"]
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings) as client:
        client.register_model(model, "pipeline", input_example=data.frame[:5])
    with running_server(settings, ServeOptions(references=("pipeline:1",))) as server:
        buffer = io.StringIO()
        rows.to_csv(buffer, index=False)
        csv = server.post("/invocations", buffer.getvalue(), content_type="text/csv")
        _assert_answers(csv, model, rows, "csv")
        split = {"columns": list(rows.columns), "data": rows.values.tolist()}
        bodies = {
            "dataframe_split": {"dataframe_split": split},
            "dataframe_records": {"dataframe_records": _records(rows)},
            "instances": {"instances": _records(rows)},
        }
        for protocol, body in bodies.items():
            _assert_answers(server.post("/invocations", body), model, rows, protocol)


def test_null_reaches_a_model_that_scores_missing_values(
    fair: tuple[Fair, RunningServer],
) -> None:
    data, server = fair
    rows = data.frame[NUMBERS].iloc[40:60].copy()
    rows.loc[rows.index[::3], "age"] = np.nan
    rows.loc[rows.index[1], "educ"] = np.nan
    reply = server.post("/v1/models/gaps/predict", {"inputs": _records(rows)})
    assert reply.status == 200, reply.text
    model = data.models["gaps"]
    assert reply.json()["predictions"] == model.predict(rows).tolist()
    np.testing.assert_allclose(
        reply.json()["probabilities"], model.predict_proba(rows), rtol=0, atol=PROBABILITY_ATOL
    )


def test_null_is_refused_naming_the_column_where_the_model_cannot_score_it(
    fair: tuple[Fair, RunningServer],
) -> None:
    data, server = fair
    for name in ("linear", "pipeline"):
        columns = NUMBERS if name == "linear" else list(data.frame.columns)
        record = _records(data.frame[columns].iloc[:1])[0]
        record["age"] = None
        reply = server.post(f"/v1/models/{name}/predict", {"inputs": [record]})
        assert reply.status == 422, (name, reply.text)
        assert reply.json()["field"] == "age" and "missing value" in reply.json()["error"]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("occupation", 3, "expected text, got int"),
        ("occupation", True, "expected text, got true"),
        ("age", "32", "expected a number, got str"),
        ("age", False, "expected a number, got false"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_column(
    fair: tuple[Fair, RunningServer], column: str, value: Any, expected: str
) -> None:
    data, server = fair
    record = _records(data.frame.iloc[:1])[0]
    record[column] = value
    reply = server.post("/v1/models/pipeline/predict", {"inputs": [record]})
    assert reply.status == 422, reply.text
    assert reply.json()["field"] == column and expected in reply.json()["error"], reply.text


def test_string_class_labels_come_back_as_strings(fair: tuple[Fair, RunningServer]) -> None:
    data, server = fair
    model = data.models["labels"]
    rows = data.frame.drop(columns=["occupation"]).assign(occupation=data.frame["occupation"])
    rows = rows.iloc[500:520]
    reply = server.post("/v1/models/labels/predict", {"inputs": _records(rows)})
    assert reply.status == 200, reply.text
    assert reply.json()["predictions"] == model.predict(rows).tolist()
    assert all(isinstance(p, str) for p in reply.json()["predictions"])
    np.testing.assert_allclose(
        reply.json()["probabilities"], model.predict_proba(rows), rtol=0, atol=PROBABILITY_ATOL
    )


def test_a_count_column_takes_whole_numbers_sent_as_3_0_and_refuses_3_5(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {"children": rng.integers(0, 6, 400), "income": rng.normal(50, 10, 400).round(1)}
    )
    target = (frame["children"] + rng.normal(size=400) > 2.5).astype(int)
    model = LogisticRegression().fit(frame, target)
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings) as client:
        version = client.register_model(model, "counts", input_example=frame[:5])
    assert {c.name: c.dtype for c in version.signature.inputs}["children"] == "int64"
    with running_server(settings, ServeOptions(references=("counts:1",))) as server:
        whole = server.post(
            "/v1/models/counts/predict",
            {"columns": ["children", "income"], "data": [[3.0, 48.5], [1, 52.0]]},
        )
        assert whole.status == 200, whole.text
        expected = model.predict(pd.DataFrame({"children": [3, 1], "income": [48.5, 52.0]}))
        assert whole.json()["predictions"] == expected.tolist()
        for value in (3.5, 1e300):
            refused = server.post(
                "/v1/models/counts/predict",
                {"columns": ["children", "income"], "data": [[1, 50.0], [value, 48.5]]},
            )
            assert refused.status == 422, refused.text
            assert refused.json()["field"] == "children", refused.text
            assert "row 1" in refused.json()["error"] and "whole number" in refused.json()["error"]

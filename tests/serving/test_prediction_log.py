"""Prediction logging over real HTTP (``serve --log-predictions`` and the environment's
``[environments.dev.monitoring]``): what a logged row holds, sampling, excluded columns,
request ids, a full queue, a failing disk, and hot swap. Servers run on 127.0.0.1 on a
thread (see conftest); their logs are read back with ``logfiles.read_predictions`` after
they stop (a clean stop writes everything)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modelrail.monitoring.logfiles import read_predictions
from tests.serving.log_project import PREDICT, Project, make_project, metric, records, serving


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("logging-project"))


def test_logged_rows_hold_ids_inputs_answers_and_the_version(
    project: Project, tmp_path: Path
) -> None:
    rows = project.frame.iloc[10:17]
    sent = records(rows)
    with serving(project, tmp_path) as server:
        many = server.post(PREDICT, {"inputs": sent})
        one = server.post(PREDICT, {"inputs": sent[:1]})
    assert many.status == one.status == 200
    table = read_predictions(tmp_path, "churn")
    assert table.num_rows == len(sent) + 1
    assert "input.email" not in table.column_names  # excluded by the environment's policy
    logged = table.sort_by([("request_id", "ascending"), ("row", "ascending")]).to_pydict()
    by_id = {many.headers["x-request-id"]: many, one.headers["x-request-id"]: one}
    assert set(logged["request_id"]) == set(by_id)
    answer = many.json()
    mine = [i for i, rid in enumerate(logged["request_id"]) if rid == many.headers["x-request-id"]]
    assert [logged["row"][i] for i in mine] == list(range(len(sent)))
    assert [logged["input.plan"][i] for i in mine] == [r["plan"] for r in sent]
    assert [logged["input.tenure"][i] for i in mine] == [r["tenure"] for r in sent]
    assert None in [r["plan"] for r in sent] and None in [r["tenure"] for r in sent]
    assert [logged["input.visits"][i] for i in mine] == [float(r["visits"]) for r in sent]
    assert [logged["prediction"][i] for i in mine] == [str(p) for p in answer["predictions"]]
    values = [logged["prediction_value"][i] for i in mine]
    np.testing.assert_allclose(values, [p[1] for p in answer["probabilities"]])
    for column, expected in [
        ("model", "churn"),
        ("version", 1),
        ("environment", "dev"),
        ("source", "serve"),
        ("sample_rate", 1.0),
    ]:
        assert set(logged[column]) == {expected}, column
    assert all(ms > 0 for ms in logged["latency_ms"])
    arrived = table.column("time").cast(pa.int64()).to_numpy() / 1e6
    assert np.all(np.abs(arrived - time.time()) < 120)
    assert table.schema.field("input.tenure").type == pa.float64()
    assert table.schema.field("input.plan").type == pa.string()


def test_a_regression_logs_its_value_as_a_number(project: Project, tmp_path: Path) -> None:
    with serving(project, tmp_path) as server:
        reply = server.post("/v1/models/spend/predict", {"inputs": [{"visits": 3, "tenure": 12.5}]})
    assert reply.status == 200
    logged = read_predictions(tmp_path, "spend").to_pylist()
    (row,) = logged
    assert row["prediction_value"] == pytest.approx(reply.json()["predictions"][0])
    assert float(row["prediction"]) == pytest.approx(reply.json()["predictions"][0])
    assert row["input.visits"] == 3.0 and row["input.tenure"] == 12.5
    assert row["request_id"] == reply.headers["x-request-id"]


def test_request_ids_come_back_on_every_answer_and_a_callers_own_is_kept(
    project: Project, tmp_path: Path
) -> None:
    body = {"inputs": records(project.frame.iloc[20:21])}
    with serving(project, tmp_path) as server:
        chosen = server.post(PREDICT, body, headers={"x-request-id": "order-1789:a/b"})
        made = [server.post(PREDICT, body).headers["x-request-id"] for _ in range(3)]
        bad = server.post(PREDICT, body, headers={"x-request-id": "no spaces, please"})
        long = server.post(PREDICT, body, headers={"x-request-id": "x" * 129})
        refused = server.post(PREDICT, {"inputs": [{"plan": "basic"}]})
        unknown = server.post("/v1/models/nope/predict", body)
        health = server.get("/health")
    assert chosen.status == 200 and chosen.headers["x-request-id"] == "order-1789:a/b"
    assert len(set(made)) == 3 and all(re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", m) for m in made)
    for reply in (bad, long):
        assert reply.status == 400 and reply.json()["field"] == "x-request-id"
        assert reply.headers["x-request-id"] not in ("no spaces, please", "x" * 129)
    for reply in (refused, unknown, health):
        assert reply.headers["x-request-id"]
    assert refused.status == 422 and unknown.status == 404
    logged = set(read_predictions(tmp_path, "churn").column("request_id").to_pylist())
    assert logged == {"order-1789:a/b", *made}  # refused requests are not logged


def test_the_server_rate_overrides_the_environments_and_is_honoured(
    project: Project, tmp_path: Path
) -> None:
    body = {"inputs": records(project.frame.iloc[30:31])}
    requests = 1200
    with serving(project, tmp_path, log_predictions=0.25) as server:
        for _ in range(requests):
            assert server.post(PREDICT, body).status == 200
    table = read_predictions(tmp_path, "churn")
    # Binomial(1200, 0.25): mean 300, sd 15; six sd either way fails once in ~10^9 runs.
    assert 210 <= table.num_rows <= 390
    assert set(table.column("sample_rate").to_pylist()) == {0.25}


def test_a_rate_of_zero_logs_nothing_and_shows_no_log_metrics(
    project: Project, tmp_path: Path
) -> None:
    body = {"inputs": records(project.frame.iloc[30:31])}
    with serving(project, tmp_path, log_predictions=0.0) as server:
        for _ in range(20):
            assert server.post(PREDICT, body).status == 200
        assert "modelrail_prediction_log" not in server.get("/metrics").text
    assert not (tmp_path / "predictions").exists()


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("churn", {"inputs": [{"plan": "pro", "tenure": 3.0, "email": "a@b.c", "visits": 2}]}),
        ("spend", {"inputs": [{"visits": 2, "tenure": 3.0}]}),  # numbers: copied into blocks
    ],
)
def test_a_full_queue_drops_records_and_counts_them_never_the_requests(
    project: Project, tmp_path: Path, model: str, body: Any
) -> None:
    # The writer takes what is queued only once a minute: the queue holds 3 rows.
    with serving(project, tmp_path, log_queue_rows=3, log_collect_every_s=60.0) as server:
        replies = [server.post(f"/v1/models/{model}/predict", body) for _ in range(10)]
        assert [r.status for r in replies] == [200] * 10
        dropped = metric(
            server, "modelrail_prediction_log_dropped_total", model=model, reason="queue_full"
        )
        assert dropped == 7
    logged = read_predictions(tmp_path, model).column("request_id").to_pylist()
    assert logged == [r.headers["x-request-id"] for r in replies[:3]]


def test_a_log_that_cannot_be_written_is_counted_and_serving_goes_on(
    project: Project, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log's folder should be")
    body = {"inputs": records(project.frame.iloc[40:41])}
    with serving(project, blocked, log_file_seconds=0.05, log_collect_every_s=0.02) as server:
        deadline = time.monotonic() + 10
        failures = 0.0
        while time.monotonic() < deadline and not failures:
            assert server.post(PREDICT, body).status == 200
            failures = metric(server, "modelrail_prediction_log_write_errors_total", model="churn")
            time.sleep(0.05)
        assert failures >= 1
        lost = metric(
            server, "modelrail_prediction_log_dropped_total", model="churn", reason="write_error"
        )
        assert lost >= 1
        assert server.post(PREDICT, body).status == 200
        assert server.get("/ready").status == 200


def test_files_roll_by_rows_while_serving(project: Project, tmp_path: Path) -> None:
    body = {"inputs": records(project.frame.iloc[50:55])}
    with serving(project, tmp_path, log_file_rows=10, log_collect_every_s=0.02) as server:
        for _ in range(6):
            assert server.post(PREDICT, body).status == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if metric(server, "modelrail_prediction_log_written_total", model="churn") >= 4:
                break
            time.sleep(0.05)
        written = metric(server, "modelrail_prediction_log_written_total", model="churn")
        assert written >= 4  # (files of 10 rows: 2 requests each, written while serving)
    files = sorted((tmp_path / "predictions" / "model=churn").glob("date=*/*.parquet"))
    assert len(files) >= 2
    assert read_predictions(tmp_path, "churn").num_rows == 30

"""The prediction log across a hot swap (each row carries the version that answered it) and
with a shadow (its answers logged under the live request's id, source "shadow")."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from modelrail.monitoring.logfiles import read_predictions
from modelrail.serving.server import ServeOptions
from tests.serving.conftest import running_server
from tests.serving.log_project import (
    POLICY,
    PREDICT,
    Project,
    churn_model,
    customers,
    make_project,
    records,
)

OPEN_STAGING = """
[environments.staging]
smoke_test = false
signature_compatible = false
approval = false

[environments.staging.monitoring]
exclude_columns = ["plan"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return make_project(tmp_path / "project", POLICY + OPEN_STAGING)


def test_rows_logged_across_a_hot_swap_carry_the_version_that_answered(
    project: Project, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    settings = replace(project.settings, monitoring_root=str(logs))
    body = {"inputs": records(project.frame.iloc[70:72])}
    answered: dict[str, int] = {}
    options = ServeOptions(environment="dev", poll_interval_s=0.05)
    with running_server(settings, options) as server:
        for _ in range(5):
            reply = server.post(PREDICT, body)
            answered[reply.headers["x-request-id"]] = int(reply.headers["x-model-version"])
        frame, labels = customers(200, 7)
        with project.client() as client:
            client.register_model(
                churn_model().fit(frame, labels), "churn", input_example=frame[:5]
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and 2 not in answered.values():
            reply = server.post(PREDICT, body)
            answered[reply.headers["x-request-id"]] = int(reply.headers["x-model-version"])
            time.sleep(0.02)
        for _ in range(5):
            reply = server.post(PREDICT, body)
            answered[reply.headers["x-request-id"]] = int(reply.headers["x-model-version"])
    assert set(answered.values()) == {1, 2}
    logged = read_predictions(logs, "churn").to_pylist()
    assert len(logged) == 2 * len(answered)
    assert {r["request_id"]: r["version"] for r in logged} == answered
    assert read_predictions(logs, "churn", version=2).num_rows == 2 * list(answered.values()).count(
        2
    )


def test_a_shadows_answers_are_logged_under_the_live_requests_id(
    project: Project, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    settings = replace(project.settings, monitoring_root=str(logs))
    with project.client() as client:
        client.promote("churn:1", "staging", reason="shadow it")
    body = {"inputs": records(project.frame.iloc[80:83])}
    with running_server(settings, ServeOptions(environment="dev", shadow="staging")) as server:
        ids = [server.post(PREDICT, body).headers["x-request-id"] for _ in range(4)]
    table = read_predictions(logs, "churn")
    live = table.filter(pc.equal(table.column("source"), "serve"))
    shadow = table.filter(pc.equal(table.column("source"), "shadow"))
    assert sorted(set(live.column("request_id").to_pylist())) == sorted(ids)
    assert sorted(set(shadow.column("request_id").to_pylist())) == sorted(ids)
    assert shadow.num_rows == live.num_rows == 12
    assert set(shadow.column("environment").to_pylist()) == {"staging"}
    assert set(live.column("environment").to_pylist()) == {"dev"}
    # What either environment keeps out of the log is kept out of the shadow's rows.
    shadow_only = read_predictions(logs, "churn", environment="staging")
    assert "input.plan" not in _present(shadow_only)
    assert "input.email" not in _present(shadow_only)
    assert "input.plan" in _present(read_predictions(logs, "churn", environment="dev"))
    pairs = {(r["request_id"], r["row"]): r["prediction"] for r in live.to_pylist()}
    assert all(pairs[(r["request_id"], r["row"])] == r["prediction"] for r in shadow.to_pylist())


def _present(table: pa.Table) -> set[str]:
    """Columns that hold at least one value (files of other layouts read as nulls)."""
    return {name for name in table.column_names if table.column(name).null_count < table.num_rows}

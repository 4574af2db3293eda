"""A team keeps its monitoring folder in object storage (S3; here moto's real S3 server on
127.0.0.1): serving machines write their prediction logs into the bucket, and another
machine loads the outcomes, monitors, keeps checks and enforces retention there."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from modelrail.client import Client
from modelrail.errors import MonitoringDataError
from modelrail.monitoring import logfiles
from modelrail.monitoring.checkfiles import check_history, latest_check
from tests.conftest import S3_BUCKET
from tests.serving.log_project import PREDICT, make_project, records, serving

ROOT = f"s3://{S3_BUCKET}/monitoring"


def _objects(s3: pafs.FileSystem, prefix: str) -> list[str]:
    selector = pafs.FileSelector(f"{S3_BUCKET}/{prefix}", recursive=True, allow_not_found=True)
    return [i.path for i in s3.get_file_info(selector) if i.type == pafs.FileType.File]


def test_served_predictions_land_in_the_bucket_and_another_machine_monitors_them(
    s3: pafs.FileSystem, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "serving-machine")
    sent = records(project.frame.iloc[:40])
    with serving(project, ROOT) as server:  # the log goes to the bucket, not a folder
        answers = [server.post(PREDICT, {"inputs": [row]}) for row in sent]
    assert {a.status for a in answers} == {200}
    stored = _objects(s3, "monitoring/predictions/model=churn")
    assert stored and all(p.endswith(".parquet") for p in stored)
    assert not [p for p in stored if p.rsplit("/", 1)[-1].startswith(".")]

    labels = tmp_path / "outcomes.csv"
    outcomes = [int(a.json()["predictions"][0]) for a in answers]
    outcomes[:10] = [1 - o for o in outcomes[:10]]  # a quarter of the answers were wrong
    ids = [a.headers["x-request-id"] for a in answers]
    pd.DataFrame({"id": ids, "churned": outcomes}).to_csv(labels, index=False)
    settings = replace(project.settings, monitoring_root=ROOT)
    with Client(settings=settings, user="analyst") as analyst:
        summary = analyst.load_feedback(
            "churn", inputs=[str(labels)], id_columns=["id"], label_column="churned"
        )
        assert (summary.labels, summary.unmatched) == (40, 0)
        report = analyst.monitor("churn@dev")
        assert (report.overall.rows, report.overall.labelled) == (40, 40)
        accuracy = report.overall.metric("accuracy")
        assert accuracy is not None and accuracy.value == pytest.approx(0.75)
        outcome = analyst.check_monitoring("churn@dev", notify=False)
    assert outcome.path.startswith(ROOT)
    assert _objects(s3, "monitoring/checks/model=churn/environment=dev")
    latest = latest_check(ROOT, "churn", "dev")
    assert latest is not None and latest.overall.rows == 40
    assert len(check_history(ROOT, "churn", "dev")) == 1


def test_retention_removes_old_days_from_the_bucket(s3: pafs.FileSystem) -> None:
    start = 1_800_000_000.0
    for day in range(4):
        at = start + day * 86_400
        labels = logfiles.feedback_table([f"r{day}"], ["no"], source="t", loaded_by="u", now=at)
        logfiles.write_feedback(ROOT, "churn", labels)
    assert logfiles.logged_models(ROOT) == ["churn"]
    removed = logfiles.enforce_retention(ROOT, "churn", older_than=start + 3 * 86_400)
    assert removed == 2
    kept = logfiles.read_feedback(ROOT, "churn").column("request_id").to_pylist()
    assert sorted(kept) == ["r2", "r3"]


def test_a_bucket_that_cannot_be_reached_is_a_clear_error(
    s3: pafs.FileSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(MonitoringDataError, match="monitoring"):
        logfiles.read_predictions(ROOT, "churn")

"""Monitoring signed in to a team server: the registry, profiles, run metrics and policy come
from the server, the logs and labels from this machine's monitoring folder, and the report
is the one a local client of the same store makes from the same folder."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.remote.client import RemoteClient
from tests.monitoring.conftest import DAY, NOW, frame, log_traffic, register_churn
from tests.server.conftest import HOST, Team, start_team


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    server = tmp_path / "server"
    yield from start_team(f"sqlite:///{server / '.modelrail' / 'modelrail.db'}", server)


def test_labels_and_a_report_through_a_team_server(team: Team, tmp_path: Path) -> None:
    model = register_churn(team.client, "churn", frame(1000, 90), 91)
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    settings = load_settings(cwd=laptop, environ={}, create=False)
    viewer = RemoteClient(f"http://{HOST}:{team.port}", team.tokens["vic"], settings=settings)
    assert Path(viewer.monitoring_root).is_relative_to(laptop)
    features = frame(400, 92, shift=9.0)
    ids = log_traffic(viewer, model, features, at=NOW - DAY)  # type: ignore[arg-type]
    labels = laptop / "labels.csv"
    pd.DataFrame({"id": ids, "y": model.predict(features)}).to_csv(labels, index=False)
    summary = viewer.load_feedback(
        "churn", inputs=[str(labels)], id_columns=["id"], label_column="y"
    )
    assert (summary.labels, summary.unmatched) == (400, 0)
    report = viewer.monitor("churn@dev", since=NOW - 2 * DAY, until=NOW, now=NOW)
    assert report.reference_label == "train 1.0"  # the profile the server keeps
    assert report.status == "alert"
    accuracy = report.overall.metric("accuracy")
    assert accuracy is not None and accuracy.reference is not None  # the run's, from the server
    local_settings = dataclasses.replace(
        team.client.settings, monitoring_root=viewer.monitoring_root
    )
    with Client(store_url=team.client.db.display_url, settings=local_settings) as local:
        same = local.monitor("churn@dev", since=NOW - 2 * DAY, until=NOW, now=NOW)
    assert same.to_json() == report.to_json()

"""A prediction server's /metrics carries the latest monitoring checks of what it serves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from modelrail.client import Client
from modelrail.monitoring.gauges import LatestChecks
from tests.serving.log_project import PREDICT, Project, make_project, records, serving


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_show_the_latest_check_of_the_served_model(tmp_path: Path) -> None:
    project: Project = make_project(tmp_path / "project")
    logs = tmp_path / "logs"
    with serving(project, logs) as server:
        for row in records(project.frame.iloc[:30]):
            assert server.post(PREDICT, {"inputs": [row]}).status == 200
        assert "modelrail_monitor_rows" not in server.get("/metrics").text  # no check yet
    settings = replace(project.settings, monitoring_root=str(logs))
    with Client(settings=settings, user="analyst") as analyst:
        analyst.check_monitoring("churn@dev", notify=False)
    with serving(project, logs) as server:
        text = server.get("/metrics").text
    rows = _samples(text, "modelrail_monitor_rows")
    assert rows == {(("environment", "dev"), ("model", "churn")): 30.0}
    assert _samples(text, "modelrail_monitor_requests") == rows
    alert = _samples(text, "modelrail_monitor_alert")
    assert alert == {(("environment", "dev"), ("model", "churn"), ("version", "1")): 0.0}


def test_checks_are_read_once_per_period_and_a_damaged_one_leaves_the_gauges_out(
    tmp_path: Path,
) -> None:
    now = [0.0]
    gauges = LatestChecks(tmp_path, lambda: ["churn"], ttl_s=10, clock=lambda: now[0])
    assert gauges() == b""
    folder = tmp_path / "checks" / "model=churn" / "environment=dev"
    folder.mkdir(parents=True)
    (folder / "latest.json").write_text("{not json")
    assert gauges() == b""  # read again only after ten seconds
    now[0] = 11.0
    assert gauges() == b""  # damaged: left out, the scrape still answers

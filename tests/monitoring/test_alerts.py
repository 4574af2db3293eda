"""Stored checks notify through the policy's command only when their alerts change, and the
latest check of each environment reads back as Prometheus gauges."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelrail.client import Client
from modelrail.errors import InvalidInputError
from modelrail.monitoring.checkfiles import check_history, latest_check
from modelrail.monitoring.gauges import render_latest
from tests.monitoring.conftest import (
    DAY,
    NOW,
    MakeClient,
    Registered,
    frame,
    log_traffic,
    recorder,
)


def _payloads(folder: Path, count: int, timeout: float = 20.0) -> list[dict[str, object]]:
    """The payloads the recorder got, once there are ``count`` (it runs detached)."""
    deadline = time.monotonic() + timeout
    while True:
        files = (
            sorted((folder / "payloads").glob("*.json")) if (folder / "payloads").is_dir() else []
        )
        if len(files) >= count or time.monotonic() > deadline:
            return [json.loads(f.read_text(encoding="utf-8")) for f in files]
        time.sleep(0.05)


def test_an_alert_is_notified_once_and_its_recovery_once(
    make_client: MakeClient, registered: Registered, tmp_path: Path
) -> None:
    client = make_client(notify_command=recorder(tmp_path))
    shifted = frame(2000, 50, shift=9.0)
    log_traffic(client, registered.churn, shifted, at=NOW - DAY, prefix="a")
    first = client.check_monitoring("churn@dev", since=NOW - 2 * DAY, until=NOW, now=NOW)
    assert (first.notified, first.previous_status, first.report.status) == (
        "monitoring.alert",
        None,
        "alert",
    )
    (payload,) = _payloads(tmp_path, 1)
    assert payload["type"] == "monitoring.alert"
    assert (payload["model"], payload["environment"], payload["version"]) == ("churn", "dev", 1)
    assert payload["reference"] == "churn@dev" and payload["status"] == "alert"
    crossed = {item["name"]: item for item in payload["alerts"]}  # type: ignore[union-attr]
    assert crossed["tenure"]["kind"] == "drift" and crossed["tenure"]["threshold"] == ">= 0.2"
    assert crossed["tenure"]["value"] == pytest.approx(first.report.overall.feature("tenure").psi)  # type: ignore[union-attr]
    assert "drift:tenure" in payload["new"]  # type: ignore[operator]

    # The same alert an hour later: kept, not told again.
    again = client.check_monitoring("churn@dev", since=NOW - 2 * DAY, until=NOW, now=NOW + 3600)
    assert (again.notified, again.previous_status) == (None, "alert")

    # Usual traffic only, in a later range: resolved, told once.
    log_traffic(client, registered.churn, frame(2000, 51), at=NOW + DAY, prefix="b")
    later = NOW + 2 * DAY
    resolved = client.check_monitoring("churn@dev", since=NOW + DAY / 2, until=later, now=later)
    assert (resolved.notified, resolved.report.status) == ("monitoring.resolved", "ok")
    payloads = _payloads(tmp_path, 2)
    assert [p["type"] for p in payloads] == ["monitoring.alert", "monitoring.resolved"]
    assert "drift:tenure" in payloads[1]["resolved"]  # type: ignore[operator]
    # Nothing more after a short wait: the second check sent nothing.
    time.sleep(0.5)
    assert len(_payloads(tmp_path, 3, timeout=0.5)) == 2

    root = client.monitoring_root
    history = check_history(root, "churn", "dev")
    assert [c.checked_at for c in history] == [NOW, NOW + 3600, later]
    latest = latest_check(root, "churn", "dev")
    assert latest is not None and latest.to_json() == resolved.report.to_json()


def test_a_check_without_traffic_resolves_nothing(
    make_client: MakeClient, registered: Registered, tmp_path: Path
) -> None:
    client = make_client(notify_command=recorder(tmp_path))
    log_traffic(client, registered.churn, frame(500, 52, shift=9.0), at=NOW - DAY)
    assert client.check_monitoring("churn@dev", since=NOW - DAY, until=NOW, now=NOW).notified
    quiet = client.check_monitoring("churn@dev", since=NOW, until=NOW + DAY, now=NOW + DAY)
    assert (quiet.notified, quiet.report.status) == (None, "no data")


def test_checks_are_kept_per_environment_only(client: Client) -> None:
    with pytest.raises(InvalidInputError, match="checks are kept per environment"):
        client.check_monitoring("churn:1", since=NOW - DAY, until=NOW)


def test_the_latest_checks_read_as_prometheus_gauges(
    client: Client, registered: Registered, tmp_path: Path
) -> None:
    assert render_latest(client.monitoring_root, None) == b""
    ids = log_traffic(client, registered.churn, frame(300, 53, shift=9.0), at=NOW - DAY)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,y\n" + "".join(f"{i},yes\n" for i in ids[:40]), encoding="utf-8")
    client.load_feedback("churn", inputs=[str(labels)], id_columns=["id"], label_column="y")
    report = client.check_monitoring(
        "churn@dev", since=NOW - 2 * DAY, until=NOW, now=NOW, notify=False
    ).report
    text = render_latest(client.monitoring_root, ["churn"]).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    where = (("environment", "dev"), ("model", "churn"))
    assert samples[("modelrail_monitor_alert", (*where, ("version", "1")))] == 1.0
    assert samples[("modelrail_monitor_watch", (*where, ("version", "1")))] == 0.0
    tenure = report.overall.feature("tenure")
    assert tenure is not None
    key = ("modelrail_monitor_drift_psi", (where[0], ("feature", "tenure"), where[1]))
    assert samples[key] == pytest.approx(tenure.psi)
    statistic = (where[0], ("feature", "tenure"), where[1], ("statistic", "ks"))
    assert samples[("modelrail_monitor_drift_statistic", statistic)] == pytest.approx(
        tenure.statistic_value
    )
    accuracy = report.overall.metric("accuracy")
    assert accuracy is not None
    metric = (where[0], ("metric", "accuracy"), where[1])
    assert samples[("modelrail_monitor_live_metric", metric)] == pytest.approx(accuracy.value)
    assert samples[("modelrail_monitor_live_metric_reference", metric)] == pytest.approx(
        accuracy.reference
    )
    assert samples[("modelrail_monitor_labelled", where)] == 40.0
    assert samples[("modelrail_monitor_rows", where)] == 300.0
    assert samples[("modelrail_monitor_check_timestamp_seconds", where)] == NOW
    assert render_latest(client.monitoring_root, ["another"]) == b""

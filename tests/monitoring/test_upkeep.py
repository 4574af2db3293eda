"""The scheduler's monitoring upkeep, with time fixed: checks each environment that logged
traffic once per its period, and removes logged files past retention."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from modelrail.client import Client
from modelrail.monitoring.checkfiles import check_history, latest_check
from tests.monitoring.conftest import DAY, NOW, Registered, frame, log_traffic


def _days(client: Client, kind: str, model: str = "churn") -> list[str]:
    folder = Path(client.monitoring_root) / kind / f"model={model}"
    return sorted(p.name for p in folder.glob("date=*"))


def test_the_scheduler_checks_each_environment_hourly_and_enforces_retention(
    client: Client, registered: Registered, tmp_path: Path
) -> None:
    old = log_traffic(client, registered.churn, frame(100, 60), at=NOW - 40 * DAY, prefix="o")
    log_traffic(client, registered.churn, frame(500, 61, shift=9.0), at=NOW - DAY, prefix="n")
    log_traffic(client, registered.price, frame(50, 62)[["tenure"]].assign(size=1), at=NOW - DAY,
                name="price", environment="staging")  # fmt: skip
    labels = tmp_path / "old.csv"
    pd.DataFrame({"id": old, "y": "yes"}).to_csv(labels, index=False)
    client.load_feedback("churn", inputs=[str(labels)], id_columns=["id"], label_column="y")
    # The label file is of today; make it 40 days old as its prediction log is.
    (Path(client.monitoring_root) / "feedback" / "model=churn").joinpath(
        _days(client, "feedback")[0]
    ).rename(Path(client.monitoring_root) / "feedback" / "model=churn" / "date=2026-12-06")
    assert _days(client, "predictions") == ["date=2026-12-06", "date=2027-01-14"]

    scheduler = client.scheduler()
    assert scheduler.tick(now=NOW) == []  # no batch job: monitoring only
    check = latest_check(client.monitoring_root, "churn", "dev")
    assert check is not None and (check.checked_at, check.status) == (NOW, "alert")
    assert check.since == NOW - 7 * DAY  # check_window_days
    staging = latest_check(client.monitoring_root, "price", "staging")
    assert staging is not None and staging.overall.rows == 50
    assert latest_check(client.monitoring_root, "churn", "prod") is None  # nothing logged there
    # Files of days past the longest retention of the chain (30 days) are gone.
    assert _days(client, "predictions") == ["date=2027-01-14"]
    assert _days(client, "feedback") == []
    assert scheduler.monitoring is not None and scheduler.monitoring.last is not None
    assert scheduler.monitoring.last.removed_files == 2
    assert scheduler.next_due == NOW + 3600

    scheduler.tick(now=NOW + 600)  # within the hour: nothing to do
    assert len(check_history(client.monitoring_root, "churn", "dev")) == 1
    scheduler.tick(now=NOW + 3600)
    history = check_history(client.monitoring_root, "churn", "dev")
    assert [c.checked_at for c in history] == [NOW, NOW + 3600]


def test_a_check_is_not_repeated_before_its_period_even_by_another_scheduler(
    client: Client, registered: Registered
) -> None:
    log_traffic(client, registered.churn, frame(100, 63), at=NOW - DAY)
    client.scheduler().tick(now=NOW)
    # A second scheduler (or a restarted one) reads when the last check was made.
    client.scheduler().tick(now=NOW + 1800)
    assert len(check_history(client.monitoring_root, "churn", "dev")) == 1
    client.scheduler().tick(now=NOW + 3601)
    assert len(check_history(client.monitoring_root, "churn", "dev")) == 2

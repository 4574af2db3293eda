"""Storing a check and telling people when its alerts change.

A check of an environment's traffic is kept (``checkfiles``); it is compared with the
previous one first. A notification goes out only when something is in alert that was not
in the last check (``monitoring.alert``), or when everything in alert before has recovered
(``monitoring.resolved``), so a scheduler or cron job checking every hour does not repeat
the same alert. A check that saw no traffic at all resolves nothing: a quiet night is not a
recovery.

The payload, JSON to the policy's ``notify_command`` (stdin) and ``notify_url`` (POST):

```json
{"type": "monitoring.alert", "id": "churn@prod/1718000000000", "model": "churn",
 "environment": "prod", "version": 7, "reference": "churn@prod", "status": "alert",
 "at": "2024-06-10T06:13:20+00:00", "since": ..., "until": ...,
 "alerts": [{"kind": "drift", "name": "tenure_months", "value": 0.27, "threshold": ">= 0.2",
             "message": "tenure_months: drift (PSI) 0.27 >= 0.2"}, ...],
 "new": ["drift:tenure_months"], "resolved": []}
```
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrail.monitoring.checkfiles import latest_check, write_check
from modelrail.monitoring.report import ALERT, MonitorReport

ALERT_EVENT = "monitoring.alert"
RESOLVED_EVENT = "monitoring.resolved"

Notify = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class CheckOutcome:
    """A stored check and what it told people."""

    report: MonitorReport
    previous_status: str | None  # of the check before; None for the first one
    notified: str | None  # ALERT_EVENT, RESOLVED_EVENT, or None: nothing new to say
    path: str  # the check's file


def alert_items(report: MonitorReport) -> dict[str, dict[str, Any]]:
    """What is in alert in the whole range, by a key stable between checks
    (``drift:FEATURE``, ``prediction``, ``live:METRIC``)."""
    overall = report.overall
    items: dict[str, dict[str, Any]] = {}
    for drift in overall.features:
        if drift.status == ALERT:
            items[f"drift:{drift.feature}"] = {
                "kind": "drift",
                "name": drift.feature,
                "value": drift.psi,
                "threshold": drift.threshold,
                "message": f"{drift.feature}: drift (PSI) {drift.psi:.3g} {drift.threshold}",
            }
    prediction = overall.prediction
    if prediction is not None and prediction.status == ALERT:
        items["prediction"] = {
            "kind": "prediction",
            "name": "prediction",
            "value": prediction.psi,
            "threshold": prediction.threshold,
            "message": f"prediction: drift (PSI) {prediction.psi:.3g} {prediction.threshold}",
        }
    for metric in overall.live:
        if metric.status == ALERT and metric.value is not None:
            items[f"live:{metric.name}"] = {
                "kind": "live",
                "name": metric.name,
                "value": metric.value,
                "threshold": metric.threshold,
                "reference": metric.reference,
                "labelled": metric.labelled,
                "message": (
                    f"live {metric.name} {metric.value:.3g} {metric.threshold} "
                    f"({metric.labelled:,} labelled)"
                ),
            }
    return items


def record_check(root: str | Path, report: MonitorReport, notify: Notify | None) -> CheckOutcome:
    """Keep ``report`` as the latest check of its environment and call ``notify`` with a
    payload when its alerts changed (see the module docstring)."""
    if report.environment is None:
        raise ValueError("only checks of an environment's traffic are recorded")
    previous = latest_check(root, report.model, report.environment)
    path = write_check(root, report)
    now_items = alert_items(report)
    before = alert_items(previous) if previous is not None else {}
    new = sorted(set(now_items) - set(before))
    event = None
    if new:
        event = ALERT_EVENT
    elif before and not now_items and report.overall.rows > 0:
        event = RESOLVED_EVENT
    if event is not None and notify is not None:
        notify(payload(report, event, now_items, new, sorted(set(before) - set(now_items))))
    return CheckOutcome(
        report=report,
        previous_status=None if previous is None else previous.status,
        notified=event,
        path=str(path),
    )


def payload(
    report: MonitorReport,
    event: str,
    items: dict[str, dict[str, Any]],
    new: list[str],
    resolved: list[str],
) -> dict[str, Any]:
    reference = f"{report.model}@{report.environment}"
    return {
        "type": event,
        "id": f"{reference}/{int(report.checked_at * 1000)}",
        "model": report.model,
        "environment": report.environment,
        "version": report.version,
        "reference": reference,
        "status": report.status,
        "at": _iso(report.checked_at),
        "since": _iso(report.since),
        "until": _iso(report.until),
        "alerts": [items[key] for key in sorted(items)],
        "new": new,
        "resolved": resolved,
    }


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")

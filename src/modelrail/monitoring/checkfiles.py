"""Stored monitoring checks: one JSON file per check and the latest one per model and
environment, under the monitoring folder.

```
checks/model=NAME/environment=ENV/<epoch ms>-<nonce>.json   every check (its history)
checks/model=NAME/environment=ENV/latest.json                a copy of the newest
```

Each file is written whole (see ``storage``), so a reader never sees half a check. The
latest check is what the Prometheus gauges show and what decides whether an alert is new (a
notification goes out only when the status changes).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

from modelrail.errors import MonitoringDataError
from modelrail.monitoring.logfiles import Root, folder_of
from modelrail.monitoring.report import MonitorReport
from modelrail.monitoring.storage import MonitoringFolder

CHECKS = "checks"
LATEST = "latest.json"


def check_folder(model: str, environment: str) -> str:
    """The folder of ``model``'s checks in ``environment``, relative to the monitoring folder."""
    return f"{CHECKS}/model={model}/environment={environment}"


def write_check(root: Root, report: MonitorReport) -> str:
    """Keep ``report`` (a check of an environment) in its history and as the latest; the
    history file as messages show it."""
    if report.environment is None:
        raise ValueError("only checks of an environment's traffic are stored")
    folder = folder_of(root)
    base = check_folder(report.model, report.environment)
    text = json.dumps(report.to_json(), indent=1, sort_keys=True, allow_nan=False).encode()
    # Two checks in one millisecond (or on two machines) keep both: the name has a nonce.
    relative = f"{base}/{int(report.checked_at * 1000)}-{secrets.token_hex(3)}.json"
    folder.replace_whole(relative, text)
    folder.replace_whole(f"{base}/{LATEST}", text)
    return folder.shown_path(relative)


def latest_check(root: Root, model: str, environment: str) -> MonitorReport | None:
    """The newest stored check of ``model`` in ``environment``; None when there is none."""
    folder = folder_of(root)
    return _read(folder, f"{check_folder(model, environment)}/{LATEST}")


def latest_checks(root: Root, models: Iterable[str] | None = None) -> list[MonitorReport]:
    """The newest check of every (model, environment) with one, of ``models`` only when
    given, by model and environment."""
    folder = folder_of(root)
    wanted = None if models is None else {f"model={m}" for m in models}
    found = []
    for model_dir in folder.folders(CHECKS):
        if not model_dir.startswith("model=") or (wanted is not None and model_dir not in wanted):
            continue
        for env_dir in folder.folders(f"{CHECKS}/{model_dir}"):
            report = _read(folder, f"{CHECKS}/{model_dir}/{env_dir}/{LATEST}")
            if report is not None:
                found.append(report)
    return found


def check_moments(root: Root, model: str, environment: str) -> list[tuple[int, str]]:
    """(epoch ms, relative path) of every stored check of ``model`` in ``environment``."""
    folder = folder_of(root)
    found = []
    for relative in folder.files(check_folder(model, environment), suffix=".json"):
        stamp = relative.rsplit("/", 1)[-1].split("-", 1)[0].removesuffix(".json")
        if stamp.isdigit():
            found.append((int(stamp), relative))
    return sorted(found)


def check_history(
    root: Root, model: str, environment: str, *, since: float | None = None
) -> list[MonitorReport]:
    """Every stored check of ``model`` in ``environment`` made at or after ``since``, oldest
    first (what a chart of drift over time plots)."""
    folder = folder_of(root)
    reports = []
    for stamp, relative in check_moments(folder, model, environment):
        if since is not None and stamp < since * 1000:
            continue
        report = _read(folder, relative)
        if report is not None:
            reports.append(report)
    return reports


def _read(folder: MonitoringFolder, relative: str) -> MonitorReport | None:
    data = folder.read_bytes(relative)
    if data is None:
        return None
    try:
        return MonitorReport.from_json(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        shown = folder.shown_path(relative)
        raise MonitoringDataError(f"cannot read the monitoring check {shown}: {exc}") from exc

"""Stored monitoring checks: one JSON file per check and the latest one per model and
environment, under the monitoring folder.

```
checks/model=NAME/environment=ENV/<epoch ms>.json   every check (its history)
checks/model=NAME/environment=ENV/latest.json       a copy of the newest
```

Each file is written whole (temporary name, fsync, rename), so a reader never sees half a
check. The latest check is what the Prometheus gauges show and what decides whether an
alert is new (a notification goes out only when the status changes).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from modelrail.errors import MonitoringDataError
from modelrail.monitoring.report import MonitorReport

CHECKS = "checks"
LATEST = "latest.json"


def check_folder(root: str | Path, model: str, environment: str) -> Path:
    return Path(root) / CHECKS / f"model={model}" / f"environment={environment}"


def write_check(root: str | Path, report: MonitorReport) -> Path:
    """Keep ``report`` (a check of an environment) in its history and as the latest; the
    history file's path."""
    if report.environment is None:
        raise ValueError("only checks of an environment's traffic are stored")
    folder = check_folder(root, report.model, report.environment)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report.to_json(), indent=1, sort_keys=True, allow_nan=False)
    stamp = int(report.checked_at * 1000)
    target = folder / f"{stamp}.json"
    while target.exists():  # two checks in one millisecond: keep both
        stamp += 1
        target = folder / f"{stamp}.json"
    _write_whole(target, text)
    _write_whole(folder / LATEST, text)
    return target


def latest_check(root: str | Path, model: str, environment: str) -> MonitorReport | None:
    """The newest stored check of ``model`` in ``environment``; None when there is none."""
    path = check_folder(root, model, environment) / LATEST
    return _read(path) if path.is_file() else None


def latest_checks(root: str | Path, models: Iterable[str] | None = None) -> list[MonitorReport]:
    """The newest check of every (model, environment) with one, of ``models`` only when
    given, by model and environment."""
    base = Path(root) / CHECKS
    if not base.is_dir():
        return []
    wanted = None if models is None else {f"model={m}" for m in models}
    found = []
    for model_dir in sorted(base.glob("model=*")):
        if wanted is not None and model_dir.name not in wanted:
            continue
        for env_dir in sorted(model_dir.glob("environment=*")):
            path = env_dir / LATEST
            if path.is_file():
                found.append(_read(path))
    return found


def check_history(
    root: str | Path, model: str, environment: str, *, since: float | None = None
) -> list[MonitorReport]:
    """Every stored check of ``model`` in ``environment`` made at or after ``since``, oldest
    first (what a chart of drift over time plots)."""
    folder = check_folder(root, model, environment)
    if not folder.is_dir():
        return []
    paths = []
    for path in folder.glob("*.json"):
        if not path.stem.isdigit():
            continue
        if since is not None and int(path.stem) < since * 1000:
            continue
        paths.append((int(path.stem), path))
    return [_read(path) for _, path in sorted(paths)]


def _read(path: Path) -> MonitorReport:
    try:
        return MonitorReport.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MonitoringDataError(f"cannot read the monitoring check {path}: {exc}") from exc


def _write_whole(target: Path, text: str) -> None:
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise

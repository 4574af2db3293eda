"""Each environment's monitoring policy: what serving logs, for how long, and the thresholds
that make drift or a live metric a "watch" or an "alert".

```toml
[environments.prod.monitoring]
log_predictions = 0.2          # share of requests logged (0..1)
exclude_columns = ["email"]    # input columns never logged (personal data)
retention_days = 30            # logged files older than this are removed (0: kept)
drift_watch = 0.1              # population stability index at or above: watch
drift_alert = 0.2              # ... at or above: alert
min_live = { accuracy = 0.88 } # a live metric below: alert
max_live = { mae = 3.0 }       # a live metric above: alert
check_every_minutes = 60       # the scheduler checks drift and live metrics this often
check_window_days = 7          # ... over the logged traffic of this many days
```

The monitoring table governs like the gates do (what is logged is a privacy decision), so a
team's shared policy carries it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

DEFAULT_RETENTION_DAYS = 30.0


@dataclass(frozen=True)
class MonitoringPolicy:
    log_predictions: float = 0.0
    exclude_columns: tuple[str, ...] = ()
    retention_days: float = DEFAULT_RETENTION_DAYS
    drift_watch: float = 0.1
    drift_alert: float = 0.2
    min_live: Mapping[str, float] = field(default_factory=dict)
    max_live: Mapping[str, float] = field(default_factory=dict)
    check_every_minutes: float = 60.0
    check_window_days: float = 7.0

    def to_document(self) -> dict[str, Any]:
        """Every key as modelrail.toml spells it, in a fixed order."""
        return {
            "log_predictions": self.log_predictions,
            "exclude_columns": list(self.exclude_columns),
            "retention_days": self.retention_days,
            "drift_watch": self.drift_watch,
            "drift_alert": self.drift_alert,
            "min_live": dict(sorted(self.min_live.items())),
            "max_live": dict(sorted(self.max_live.items())),
            "check_every_minutes": self.check_every_minutes,
            "check_window_days": self.check_window_days,
        }


# Fails with the message for a key of the table (the caller knows the file and the line).
Fail = Callable[[str, str], NoReturn]


def parse_monitoring(heading: str, value: Any, fail: Fail) -> MonitoringPolicy:
    """The ``[environments.NAME.monitoring]`` table ``value``; ``heading`` names it in errors."""
    if not isinstance(value, dict):
        fail("", f"[{heading}] must be a table")
    values: dict[str, Any] = {}
    for key, item in value.items():
        check = _CHECKS.get(key)
        if check is None:
            fail(key, f"unknown key '{key}' in [{heading}]; known: {', '.join(_CHECKS)}")
        expected = check(item)
        if expected is not None:
            fail(key, f"[{heading}] {key} must be {expected}, got {item!r}")
        values[key] = tuple(item) if key == "exclude_columns" else item
    policy = MonitoringPolicy(**values)
    if policy.drift_watch > policy.drift_alert:
        fail(
            "drift_watch",
            f"[{heading}] drift_watch ({policy.drift_watch}) must not be above "
            f"drift_alert ({policy.drift_alert})",
        )
    return policy


def _finite(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _rate(value: Any) -> str | None:
    return None if _finite(value) and 0 <= value <= 1 else "a share between 0 and 1"


def _non_negative(value: Any) -> str | None:
    return None if _finite(value) and value >= 0 else "a finite number >= 0"


def _positive(value: Any) -> str | None:
    return None if _finite(value) and value > 0 else "a finite number > 0"


def _names(value: Any) -> str | None:
    ok = isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    return None if ok else "a list of column names"


def _metrics(value: Any) -> str | None:
    ok = isinstance(value, dict) and all(
        isinstance(k, str) and k.strip() and _finite(v) for k, v in value.items()
    )
    return None if ok else "a table of metric name = finite number, e.g. { accuracy = 0.88 }"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "log_predictions": _rate,
    "exclude_columns": _names,
    "retention_days": _non_negative,
    "drift_watch": _non_negative,
    "drift_alert": _non_negative,
    "min_live": _metrics,
    "max_live": _metrics,
    "check_every_minutes": _positive,
    "check_window_days": _positive,
}

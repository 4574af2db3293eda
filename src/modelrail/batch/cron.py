"""Cron expressions in a time zone, and their fire times.

An expression has the five standard crontab fields (minute hour day month weekday, with 0 and
7 both Sunday, as in crontab) or an alias (``@hourly``, ``@daily``, ``@weekly``,
``@monthly``, ``@yearly``), and is read in an IANA time zone (default UTC), so ``0 2 * * *``
in ``Europe/Berlin`` runs at 02:00 Berlin time in winter and in summer.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

from modelrail.errors import BatchInputError

DEFAULT_TIMEZONE = "UTC"
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NUMERIC_WEEKDAY = re.compile(r"(\*|\d+|\d+-\d+)(?:/(\d+))?")


class CronTiming:
    """A cron expression in a time zone, and its fire times as Unix timestamps."""

    def __init__(self, expression: str, timezone: str = DEFAULT_TIMEZONE) -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise BatchInputError(
                f"unknown time zone {timezone!r}: use an IANA name such as 'UTC', "
                "'Europe/Berlin' or 'America/New_York'"
            ) from exc
        self.expression = expression
        self.timezone = timezone
        try:
            fields = _ALIASES.get(expression.strip().lower(), expression).split()
            if len(fields) != 5:
                raise ValueError(f"it has {len(fields)} fields, cron needs 5")
            fields[4] = _standard_weekdays(fields[4])
            self._trigger = CronTrigger.from_crontab(" ".join(fields), timezone=self.zone)
        except (ValueError, TypeError, KeyError) as exc:
            raise BatchInputError(
                f"invalid cron expression {expression!r}: {exc} (expected 'minute hour day "
                "month weekday', e.g. '0 2 * * *' for 02:00 every day)"
            ) from exc

    def first_at_or_after(self, moment: float) -> float | None:
        start = dt.datetime.fromtimestamp(moment, self.zone)
        fire = self._trigger.get_next_fire_time(None, start)
        return None if fire is None else float(fire.timestamp())

    def next_after(self, moment: float) -> float | None:
        start = dt.datetime.fromtimestamp(moment, self.zone) + dt.timedelta(microseconds=1)
        fire = self._trigger.get_next_fire_time(None, start)
        return None if fire is None else float(fire.timestamp())

    def fires(self, start: float, end: float, *, limit: int) -> list[float]:
        """The first ``limit`` fire times in ``[start, end]``, oldest first."""
        found: list[float] = []
        fire = self.first_at_or_after(start)
        while fire is not None and fire <= end and len(found) < limit:
            found.append(fire)
            fire = self.next_after(fire)
        return found

    def latest(self, start: float, end: float, count: int) -> list[float]:
        """The last ``count`` fire times in ``[start, end]``, oldest first, found by looking
        back over a widening window instead of walking every fire time since ``start``."""
        width = 3600.0
        while True:
            low = max(start, end - width)
            window: collections.deque[float] = collections.deque(maxlen=count)
            fire = self.first_at_or_after(low)
            while fire is not None and fire <= end:
                window.append(fire)
                fire = self.next_after(fire)
            if len(window) >= count or low <= start:
                return list(window)
            width *= 4

    def describe(self, moment: float | None) -> str:
        if moment is None:
            return "-"
        return dt.datetime.fromtimestamp(moment, self.zone).strftime("%Y-%m-%d %H:%M %Z")


def _standard_weekdays(field: str) -> str:
    """Crontab's weekday numbers (0 and 7 Sunday) as names: APScheduler 3 counts from Monday."""
    names: list[str] = []
    for item in field.split(","):
        match = _NUMERIC_WEEKDAY.fullmatch(item)
        if match is None:
            names.append(item)  # names (mon-fri) mean the same to both
            continue
        base, step = match.group(1), int(match.group(2) or 1)
        if base == "*" and match.group(2) is None:
            return "*"
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            low, high = (int(part) for part in base.split("-"))
        else:
            low = int(base)
            high = 6 if match.group(2) else low
        if not 0 <= low <= high <= 7 or step < 1:
            raise ValueError(f"weekday {item!r} is out of range (0-7, 0 and 7 are Sunday)")
        names.extend(_WEEKDAYS[day] for day in range(low, high + 1, step))
    return ",".join(dict.fromkeys(names))

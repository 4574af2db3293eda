"""What the scheduler does for monitoring: check each environment's logged traffic every so
often, and remove logged files past their retention.

For each model with a prediction log, the environments that logged its traffic recently are
checked when their last stored check is older than their policy's ``check_every_minutes``,
over the last ``check_window_days`` (``Client.check_monitoring``: store the check, notify when
its alerts change). Files of a model hold the traffic of every environment, so a day's
files go when they are older than the longest ``retention_days`` of the chain (and never
while an environment keeps logs for ever, ``retention_days = 0``); stored checks go with them.

A pass runs at most once per the shortest ``check_every_minutes`` of the chain, so a
scheduler that ticks every 30 seconds does not read the logs every 30 seconds. Several
schedulers sharing one monitoring folder may both check an environment at the same moment;
the worst that does is one repeated check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pyarrow.compute as pc

from modelrail.errors import ModelrailError
from modelrail.monitoring import logfiles
from modelrail.monitoring.checkfiles import CHECKS, check_moments, latest_check
from modelrail.monitoring.logfiles import folder_of

if TYPE_CHECKING:
    from modelrail.config import Settings
    from modelrail.monitoring.alerts import CheckOutcome
    from modelrail.policy import PromotionPolicy

log = logging.getLogger("modelrail.monitoring")
DAY = 86_400.0


class UpkeepHost(Protocol):
    """What upkeep needs of the client: ``Client`` offers it."""

    @property
    def settings(self) -> Settings: ...

    @property
    def policy(self) -> PromotionPolicy: ...

    def check_monitoring(
        self, reference: str, *, since: float, until: float, now: float | None = None
    ) -> CheckOutcome: ...


@dataclass(frozen=True)
class UpkeepResult:
    checks: tuple[CheckOutcome, ...]
    removed_files: int  # prediction and label files past retention
    errors: tuple[str, ...]  # checks that failed (the others went on)


class MonitoringUpkeep:
    """Runs ``run(now)`` when due; ``next_due`` says when that is."""

    def __init__(self, host: UpkeepHost) -> None:
        self.host = host
        self.next_due: float | None = None
        self.last: UpkeepResult | None = None

    def run_due(self, now: float) -> UpkeepResult | None:
        if self.next_due is not None and now < self.next_due:
            return None
        policy = self.host.policy
        every = min(policy.environment(e).monitoring.check_every_minutes for e in policy.chain)
        # Set first: a pass that fails is not retried at every tick.
        self.next_due = now + every * 60.0
        self.last = self.run(now)
        return self.last

    def run(self, now: float) -> UpkeepResult:
        """One pass over every logged model: due checks, then retention."""
        root = self.host.settings.monitoring_folder
        policy = self.host.policy
        checks: list[CheckOutcome] = []
        errors: list[str] = []
        removed = 0
        longest = max(policy.environment(e).monitoring.check_window_days for e in policy.chain)
        for model in logfiles.logged_models(root):
            for environment in _environments(root, model, now - longest * DAY, policy.chain):
                settings = policy.environment(environment).monitoring
                previous = latest_check(root, model, environment)
                every = settings.check_every_minutes * 60.0
                if previous is not None and now - previous.checked_at < every:
                    continue
                reference = f"{model}@{environment}"
                try:
                    outcome = self.host.check_monitoring(
                        reference,
                        since=now - settings.check_window_days * DAY,
                        until=now,
                        now=now,
                    )
                except ModelrailError as exc:
                    errors.append(f"{reference}: {exc.message}")
                    log.error("monitoring: %s: %s", reference, exc.message)
                    continue
                checks.append(outcome)
                log.info(
                    "monitoring: %s checked: %s%s",
                    reference,
                    outcome.report.status,
                    f" (notified: {outcome.notified})" if outcome.notified else "",
                )
            removed += _retention(root, model, policy, now)
        return UpkeepResult(tuple(checks), removed, tuple(errors))


def _environments(root: str, model: str, since: float, chain: tuple[str, ...]) -> list[str]:
    """The environments of the chain that logged ``model``'s traffic since ``since``."""
    table = logfiles.read_log(
        root, logfiles.PREDICTIONS, model, since=since, columns=["time", "environment"]
    )
    if table is None or "environment" not in table.column_names or table.num_rows == 0:
        return []
    seen = set(pc.unique(table.column("environment")).to_pylist())
    return [name for name in chain if name in seen]


def _retention(root: str, model: str, policy: PromotionPolicy, now: float) -> int:
    days = [policy.environment(e).monitoring.retention_days for e in policy.chain]
    if not days or min(days) <= 0:
        return 0  # an environment keeps its logs for ever
    cut = now - max(days) * DAY
    removed = logfiles.enforce_retention(root, model, older_than=cut)
    if removed:
        log.info(
            "monitoring: %s: removed %d logged file(s) older than %g days",
            model,
            removed,
            max(days),
        )
    _prune_checks(root, model, cut)
    return removed


def _prune_checks(root: str, model: str, cut: float) -> None:
    folder = folder_of(root)
    for environment in folder.folders(f"{CHECKS}/model={model}"):
        name = environment.removeprefix("environment=")
        for stamp, relative in check_moments(folder, model, name):
            if stamp < cut * 1000:
                folder.remove(relative)

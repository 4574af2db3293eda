"""What the prediction server logs (``serve --log-predictions RATE`` and each environment's
``[environments.NAME.monitoring]``), worked out once when the server is built.

The share of requests logged is the server's ``--log-predictions`` when given, else the
``log_predictions`` of the environment that holds the model served (0 for a fixed version
named without one). Features in an environment's ``exclude_columns`` are never logged for a
model served from it, nor for a shadow of it. The policy is read when the server starts:
changes to it take effect at the next start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelrail.monitoring.prediction_log import LogChannel, PredictionLog
from modelrail.monitoring.prediction_rows import Origin
from modelrail.policy_monitoring import MonitoringPolicy

if TYPE_CHECKING:
    from modelrail.client import Client
    from modelrail.serving.metrics import ServerMetrics
    from modelrail.serving.models import ServedModel
    from modelrail.serving.options import ServeOptions

__all__ = ["LogPlan", "plan_logging"]


@dataclass(frozen=True)
class LogPlan:
    log: PredictionLog
    rate: float | None  # the server's own rate, None: each environment's
    policies: Mapping[str, MonitoringPolicy]  # of the environments this server serves from

    def rate_for(self, environment: str | None) -> float:
        if self.rate is not None:
            return self.rate
        policy = self.policies.get(environment) if environment else None
        return policy.log_predictions if policy is not None else 0.0

    def excluded(self, *environments: str | None) -> tuple[str, ...]:
        found: list[str] = []
        for name in environments:
            policy = self.policies.get(name) if name else None
            if policy is not None:
                found += [c for c in policy.exclude_columns if c not in found]
        return tuple(found)

    def origin(self, served: ServedModel, *, source: str = "serve") -> Origin:
        return Origin.of(
            served.scoring.version,
            environment=served.environment,
            source=source,
            rate=self.rate_for(served.environment),
            exclude=self.excluded(served.environment),
        )

    def shadow_origin(self, live: Origin, shadow: ServedModel) -> Origin:
        """The origin of a shadow's answers to requests ``live`` logged: the same rate,
        without what either environment keeps out of the log."""
        return Origin.of(
            shadow.scoring.version,
            environment=shadow.environment,
            source="shadow",
            rate=live.rate,
            exclude=self.excluded(live.environment, shadow.environment),
        )

    def channel(self) -> LogChannel:
        return self.log.channel()


def plan_logging(
    client: Client,
    options: ServeOptions,
    metrics: ServerMetrics,
    environments: Iterable[str | None],
) -> LogPlan | None:
    """The server's logging, or None when it logs nothing at all (no rate above 0)."""
    policies = {
        name: client.policy.environment(name).monitoring
        for name in {*environments, options.shadow}
        if name is not None
    }
    return plan_log(client.settings.monitoring_folder, policies, options, metrics)


def plan_log(
    folder: str,
    policies: Mapping[str, MonitoringPolicy],
    options: ServeOptions,
    metrics: ServerMetrics,
) -> LogPlan | None:
    """The logging of a server whose environments have ``policies``, into ``folder``."""
    if options.log_predictions is not None:
        if options.log_predictions <= 0:
            return None
    elif not any(p.log_predictions > 0 for p in policies.values()):
        return None
    log = PredictionLog(
        folder,
        metrics.prediction_log_counts(),
        queue_rows=options.log_queue_rows,
        file_rows=options.log_file_rows,
        file_seconds=options.log_file_seconds,
        collect_every_s=options.log_collect_every_s,
    )
    return LogPlan(log, options.log_predictions, policies)

"""Monitoring through ``Client``: load labels, check drift and live metrics, keep checks.

``MonitoringMethods`` is mixed into ``Client`` and ``RemoteClient``. It reads the registry
only through the client's public reads (versions, runs, reference profiles, the policy), so
those may come from a team server, and the logs from the monitoring folder of this machine
(``Settings.monitoring_folder``: where the server that logs predictions runs, or a shared
``[monitoring] root``).

What a reference names is the traffic judged:
- ``churn@prod``: what prod answered (shadow answers left out), judged by the version prod
  holds, each time window by the version that answered most of it;
- ``churn:7``: everything version 7 answered (served, shadowed, batch-scored), in any
  environment unless ``environment`` narrows it;
- ``churn``: the same for the latest version.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from modelrail.errors import (
    FeedbackError,
    InvalidInputError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    NotFoundError,
)
from modelrail.refs import Ref

if TYPE_CHECKING:
    import pyarrow as pa

    from modelrail.config import Settings
    from modelrail.entities import ModelVersion, Run
    from modelrail.monitoring.alerts import CheckOutcome
    from modelrail.monitoring.feedback import FeedbackSummary
    from modelrail.monitoring.monitor import Reference
    from modelrail.monitoring.profiles import ReferenceProfile
    from modelrail.monitoring.report import MonitorReport
    from modelrail.monitoring.upkeep import MonitoringUpkeep
    from modelrail.policy import PromotionPolicy
    from modelrail.policy_monitoring import MonitoringPolicy

DEFAULT_SINCE_SECONDS = 7 * 86_400.0


class MonitoringMethods:
    """Prediction logs, labels and monitoring checks: the monitoring half of ``Client``."""

    settings: Settings

    if TYPE_CHECKING:  # the other halves of Client (and RemoteClient) define them

        @property
        def policy(self) -> PromotionPolicy: ...

        def get_model_version(self, reference: str | Ref) -> ModelVersion: ...

        def get_run(self, run_id: str) -> Run: ...

        def reference_profile(self, ref: str) -> ReferenceProfile | None: ...

        # An attribute of Client, a property of RemoteClient (the signed-in user).
        user: Any

    @property
    def monitoring_root(self) -> str:
        """The folder of prediction logs, labels and checks on this machine."""
        return self.settings.monitoring_folder

    # -- labels ----------------------------------------------------------------------------

    def load_feedback(
        self,
        model: str,
        *,
        inputs: Sequence[str] = (),
        query: str | None = None,
        query_url: str | None = None,
        id_columns: Sequence[str],
        label_column: str,
        row_column: str | None = None,
    ) -> FeedbackSummary:
        """Attach true outcomes to ``model``'s logged predictions, from files or folders
        (``inputs``) or a ``query`` on ``query_url``; see ``monitoring.feedback``."""
        from modelrail.monitoring.feedback import load_feedback

        try:
            self.get_model_version(model)
        except (ModelNotFoundError, ModelVersionNotFoundError) as exc:
            raise FeedbackError(f"cannot load labels for model {model!r}: {exc.message}") from exc
        return load_feedback(
            self.monitoring_root,
            model,
            inputs=inputs,
            query=query,
            query_url=query_url,
            id_columns=id_columns,
            label_column=label_column,
            row_column=row_column,
            loaded_by=self.user,
            now=time.time(),
        )

    # -- checks ----------------------------------------------------------------------------

    def monitor(
        self,
        ref: str,
        *,
        since: float | None = None,
        until: float | None = None,
        window_seconds: float | None = None,
        environment: str | None = None,
        now: float | None = None,
    ) -> MonitorReport:
        """Drift of the inputs and predictions, and live metrics on labelled predictions, of
        the traffic ``ref`` names (see the module docstring) in ``[since, until)`` (default:
        the 7 days up to now), overall, per version and per window of ``window_seconds``."""
        import pyarrow.compute as pc

        from modelrail.monitoring.logfiles import read_feedback, read_predictions
        from modelrail.monitoring.monitor import MAX_WINDOWS, build_report

        parsed = Ref.parse(ref)
        now = time.time() if now is None else now
        until = now if until is None else until
        since = until - DEFAULT_SINCE_SECONDS if since is None else since
        _check_range(since, until, window_seconds, MAX_WINDOWS)
        if parsed.environment is not None and environment is not None:
            raise InvalidInputError(
                f"{ref} names its environment already: leave out {{environment}}",
                params=("environment",),
            )
        root = self.monitoring_root
        name = parsed.name
        where: str | None = parsed.environment
        if where is not None:
            policy = self.policy.environment(where).monitoring
            predictions = read_predictions(root, name, since=since, until=until, environment=where)
            served = pc.fill_null(pc.not_equal(predictions.column("source"), "shadow"), True)
            predictions = predictions.filter(served)
            version = self._held_or_served(name, where, predictions)
        else:
            held = self.get_model_version(parsed)
            version, where = held.version, environment
            policy = self._thresholds(environment)
            predictions = read_predictions(
                root, name, since=since, until=until, environment=environment, version=version
            )
        references: dict[int, Reference] = {}

        def reference_for(number: int) -> Reference:
            if number not in references:
                references[number] = self._reference(name, number)
            return references[number]

        return build_report(
            model=name,
            environment=where,
            version=version,
            predictions=predictions,
            labels=read_feedback(root, name),
            reference_for=reference_for,
            policy=policy,
            since=since,
            until=until,
            window_seconds=window_seconds,
            checked_at=now,
        )

    def check_monitoring(
        self,
        reference: str,
        *,
        since: float | None = None,
        until: float | None = None,
        window_seconds: float | None = None,
        now: float | None = None,
        notify: bool = True,
    ) -> CheckOutcome:
        """``monitor`` an environment's traffic (``reference`` is ``NAME@ENV``), keep the
        result as its latest check, and send the policy's notification when its alerts
        changed since the last check (``notify``)."""
        from modelrail.monitoring.alerts import record_check
        from modelrail.notify import send_notification

        parsed = Ref.parse(reference)
        if parsed.environment is None:
            raise InvalidInputError(
                f"checks are kept per environment: name one ({parsed.name}@ENV), not {reference}"
            )
        report = self.monitor(
            reference, since=since, until=until, window_seconds=window_seconds, now=now
        )
        policy = self.policy
        project_dir = self.settings.project_dir
        return record_check(
            self.monitoring_root,
            report,
            (lambda payload: send_notification(policy, project_dir, payload)) if notify else None,
        )

    def monitoring_checks(self, models: Iterable[str] | None = None) -> list[MonitorReport]:
        """The latest stored check of every model and environment (of ``models``)."""
        from modelrail.monitoring.checkfiles import latest_checks

        return latest_checks(self.monitoring_root, models)

    def monitoring_history(
        self, model: str, environment: str, *, since: float | None = None
    ) -> list[MonitorReport]:
        """Every stored check of ``model`` in ``environment`` since ``since``, oldest first."""
        from modelrail.monitoring.checkfiles import check_history

        return check_history(self.monitoring_root, model, environment, since=since)

    def monitoring_upkeep(self) -> MonitoringUpkeep:
        """What the scheduler runs for monitoring: due checks and retention."""
        from modelrail.monitoring.upkeep import MonitoringUpkeep

        return MonitoringUpkeep(self)

    # -- helpers ---------------------------------------------------------------------------

    def _thresholds(self, environment: str | None) -> MonitoringPolicy:
        from modelrail.policy_monitoring import MonitoringPolicy

        if environment is None:
            return MonitoringPolicy()
        return self.policy.environment(environment).monitoring

    def _held_or_served(self, name: str, environment: str, predictions: pa.Table) -> int:
        """The version ``environment`` holds; when it holds none (any more), the newest
        version that answered there in the range, else the latest version (there is
        nothing to judge, but the report names a version)."""
        try:
            return self.get_model_version(Ref(name, environment=environment)).version
        except ModelVersionNotFoundError:
            import pyarrow.compute as pc

            served = [v for v in pc.unique(predictions.column("version")).to_pylist() if v]
            if served:
                return int(max(served))
            return self.get_model_version(Ref(name)).version  # unknown: ModelNotFoundError

    def _reference(self, name: str, number: int) -> Reference:
        from modelrail.monitoring.monitor import Reference, task_of

        try:
            version = self.get_model_version(Ref(name, version=number))
        except NotFoundError:
            # Logged by a version this store does not know (another store's logs).
            return Reference(number, None, task_of((), None, None))
        profile = self.reference_profile(f"{name}:{number}")
        metrics = {}
        if version.run_id is not None:
            metrics = dict(self.get_run(version.run_id).metrics)
        outputs = version.signature.outputs
        output_type = outputs[0].dtype if outputs else None
        return Reference(
            number,
            profile,
            task_of(version.signature.classes, output_type, profile),
            metrics,
        )


def _check_range(since: float, until: float, window: float | None, most: int) -> None:
    if not since < until:
        raise InvalidInputError("{since} must be before {until}", params=("since", "until"))
    if window is not None:
        if not window > 0:
            raise InvalidInputError(
                f"{{window_seconds}} must be a positive duration, got {window:g} s",
                params=("window_seconds",),
            )
        if (until - since) / window > most:
            raise InvalidInputError(
                f"{{window_seconds}} cuts the range into more than {most} windows: "
                "choose longer windows or a shorter range",
                params=("window_seconds",),
            )

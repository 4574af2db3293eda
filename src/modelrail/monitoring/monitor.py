"""A monitoring check: logged predictions and their labels against reference versions.

``build_report`` takes what the caller read (the logged predictions of the traffic to judge,
the latest labels) and a way to get a version's ``Reference`` (its profile, what it
predicts, the metrics its run logged), and judges the whole range, each time window and
each version that answered. Windows are judged against the version that answered most of
their rows, so a window from before a promotion is judged by the version then serving.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.monitoring.drift import feature_drift
from modelrail.monitoring.live import CLASSIFICATION, REGRESSION, Task, live_metrics
from modelrail.monitoring.logfiles import INPUT_PREFIX
from modelrail.monitoring.profiles import NUMERIC, DatasetProfile, ReferenceProfile
from modelrail.monitoring.report import ALERT, FeatureDrift, MonitorReport, WindowReport
from modelrail.policy_monitoring import MonitoringPolicy

# Beyond this many windows a range is refused: a chart cannot show them, and a typo (1s
# windows over a month) would take minutes.
MAX_WINDOWS = 1000
_LABEL_COLUMNS = ["request_id", "row", "label", "label_value"]


@dataclass(frozen=True)
class Reference:
    """What a version is judged by."""

    version: int
    profile: ReferenceProfile | None
    task: Task
    metrics: Mapping[str, float] = field(default_factory=dict)  # what its run logged

    @property
    def dataset(self) -> DatasetProfile | None:
        """The training data's profile; the test data's when training data was not logged."""
        if self.profile is None:
            return None
        return self.profile.train or self.profile.test

    @property
    def label(self) -> str:
        """Which data the reference is, e.g. ``train 1.2``."""
        profile = self.profile
        if profile is None or self.dataset is None:
            return "no reference"
        if profile.train is not None:
            return profile.train_label or "train"
        return profile.test_label or "test"


def task_of(
    classes: tuple[Any, ...], output_type: str | None, profile: ReferenceProfile | None
) -> Task:
    """What a version predicts: a classifier when its signature names classes or its
    predictions were profiled as categories, a regressor when they were numbers (else when
    its output is a floating-point number)."""
    if classes:
        return Task(CLASSIFICATION, tuple(_class_text(c) for c in classes))
    if profile is not None and profile.prediction is not None:
        return Task(REGRESSION if profile.prediction.kind == NUMERIC else CLASSIFICATION)
    floating = (output_type or "").lower() in ("double", "float", "float32", "float64")
    return Task(REGRESSION if floating else CLASSIFICATION)


def build_report(
    *,
    model: str,
    environment: str | None,
    version: int,
    predictions: pa.Table,
    labels: pa.Table,
    reference_for: Callable[[int], Reference],
    policy: MonitoringPolicy,
    since: float,
    until: float,
    window_seconds: float | None,
    checked_at: float,
) -> MonitorReport:
    """Judge ``predictions`` (the traffic, already narrowed to what is monitored, within
    ``[since, until)``) and their ``labels`` (``logfiles.read_feedback``)."""
    ordered = _by_time(predictions)
    labelled = _join(ordered, labels)
    judge = _Judge(ordered, labelled, reference_for, policy)
    reference = reference_for(version)
    overall = judge.window(since, until, version)
    windows: list[WindowReport] = []
    if window_seconds is not None:
        # Windows on multiples of their length (whole UTC days, hours), the first and last
        # cut to the range: the same windows whenever the range starts.
        first = np.floor(since / window_seconds) * window_seconds
        for start in np.arange(first, until, window_seconds, dtype=np.float64).tolist():
            low, high = max(start, since), min(start + window_seconds, until)
            windows.append(judge.window(low, high, None, default=version))
    by_version = [
        judge.window(since, until, v, only_version=True) for v in overall.versions
    ]  # fmt: skip
    return MonitorReport(
        model=model,
        environment=environment,
        version=version,
        reference_label=reference.label,
        since=since,
        until=until,
        overall=overall,
        windows=tuple(windows),
        alerts=alerts_of(overall),
        by_version=tuple(by_version),
        drift_watch=policy.drift_watch,
        drift_alert=policy.drift_alert,
        checked_at=checked_at,
    )


def alerts_of(window: WindowReport) -> tuple[str, ...]:
    """What crossed an alert threshold, in words."""
    found = []
    drifts = [*window.features, *([window.prediction] if window.prediction else [])]
    for drift in drifts:
        if drift.status == ALERT and drift.psi is not None:
            found.append(f"{drift.feature}: drift (PSI) {drift.psi:.3g} {drift.threshold}")
    for metric in window.live:
        if metric.status == ALERT and metric.value is not None:
            found.append(
                f"live {metric.name} {metric.value:.3g} {metric.threshold} "
                f"({metric.labelled:,} labelled)"
            )
    return tuple(found)


class _Judge:
    def __init__(
        self,
        predictions: pa.Table,
        labelled: pa.Table,
        reference_for: Callable[[int], Reference],
        policy: MonitoringPolicy,
    ) -> None:
        self.predictions = predictions
        self.labelled = labelled
        self.reference_for = reference_for
        self.policy = policy
        self.times = _micros(predictions)
        self.label_times = _micros(labelled)
        self.inputs = [n for n in predictions.column_names if n.startswith(INPUT_PREFIX)]

    def window(
        self,
        start: float,
        end: float,
        version: int | None,
        *,
        default: int | None = None,
        only_version: bool = False,
    ) -> WindowReport:
        rows = _slice(self.predictions, self.times, start, end)
        labelled = _slice(self.labelled, self.label_times, start, end)
        if only_version and version is not None:
            rows = rows.filter(pc.equal(rows.column("version"), version))
            labelled = labelled.filter(pc.equal(labelled.column("version"), version))
        versions = sorted(
            int(v) for v in pc.unique(rows.column("version")).to_pylist() if v is not None
        )
        if version is None:
            version = _dominant(rows) if rows.num_rows else default
        reference = None if version is None else self.reference_for(version)
        features = self._features(rows, reference)
        prediction = self._prediction(rows, reference)
        live = (
            live_metrics(
                labelled,
                reference.task,
                logged=reference.metrics,
                min_live=self.policy.min_live,
                max_live=self.policy.max_live,
            )
            if reference is not None
            else ()
        )
        return WindowReport(
            start=start,
            end=end,
            versions=tuple(versions),
            requests=_requests(rows),
            rows=rows.num_rows,
            features=features,
            prediction=prediction,
            live=live,
            reference_version=version,
            labelled=labelled.num_rows,
        )

    def _features(self, rows: pa.Table, reference: Reference | None) -> tuple[FeatureDrift, ...]:
        dataset = None if reference is None else reference.dataset
        profiled = {} if dataset is None else dict(dataset.columns)
        logged = {name[len(INPUT_PREFIX) :]: name for name in self.inputs}
        order = [n for n in profiled if n in logged] + [n for n in logged if n not in profiled]
        watch, alert = self.policy.drift_watch, self.policy.drift_alert
        return tuple(
            feature_drift(
                name, profiled.get(name), rows.column(logged[name]), watch=watch, alert=alert
            )
            for name in order
        )

    def _prediction(self, rows: pa.Table, reference: Reference | None) -> FeatureDrift | None:
        if rows.num_rows == 0 and reference is None:
            return None
        profile = None
        if reference is not None and reference.profile is not None:
            profile = reference.profile.prediction
        numeric = profile.kind == NUMERIC if profile is not None else (
            reference is not None and reference.task.kind == REGRESSION
        )  # fmt: skip
        column = "prediction_value" if numeric else "prediction"
        values = rows.column(column)
        if numeric and values.null_count == len(values):
            values = rows.column("prediction")  # a regressor whose numbers were logged as text
        watch, alert = self.policy.drift_watch, self.policy.drift_alert
        return feature_drift("prediction", profile, values, watch=watch, alert=alert)


def _join(predictions: pa.Table, labels: pa.Table) -> pa.Table:
    wanted = ["request_id", "row", "time", "version", "prediction", "prediction_value"]
    left = predictions.select(wanted)
    right = labels.select(_LABEL_COLUMNS)
    if left.num_rows == 0 or right.num_rows == 0:
        return pa.schema([*left.schema, *right.schema.remove(0).remove(0)]).empty_table()
    return _by_time(left.join(right, keys=["request_id", "row"], join_type="inner"))


def _by_time(table: pa.Table) -> pa.Table:
    """``table`` in time order; as it comes when it is (logs are written in time order),
    which spares sorting every column of a million rows."""
    micros = _micros(table)
    if len(micros) < 2 or bool(np.all(micros[1:] >= micros[:-1])):
        return table
    return table.sort_by([("time", "ascending")])


def _micros(table: pa.Table) -> np.ndarray[Any, np.dtype[np.int64]]:
    column = table.column("time")
    if len(column) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(), dtype=np.int64)


def _slice(
    table: pa.Table, micros: np.ndarray[Any, np.dtype[np.int64]], start: float, end: float
) -> pa.Table:
    """Rows of ``table`` (sorted by time) with ``start <= time < end``."""
    first = int(np.searchsorted(micros, round(start * 1e6), side="left"))
    last = int(np.searchsorted(micros, round(end * 1e6), side="left"))
    return table.slice(first, max(last - first, 0))


def _dominant(rows: pa.Table) -> int:
    counts = pc.value_counts(pc.drop_null(rows.column("version")))
    values = counts.field("values").to_pylist()
    numbers = counts.field("counts").to_pylist()
    # The most rows; on a tie the newer version.
    return int(max(zip(numbers, values, strict=True))[1])


def _requests(rows: pa.Table) -> float:
    """Requests estimated from the logged ones: each logged request (its row 0) stands for
    1 / its sample rate."""
    if rows.num_rows == 0:
        return 0.0
    first = pc.equal(rows.column("row"), 0)
    rates = np.asarray(
        pc.cast(rows.column("sample_rate").filter(first), pa.float64()).to_numpy(),
        dtype=np.float64,
    )
    rates = np.where(np.isfinite(rates) & (rates > 0), rates, 1.0)
    return float(np.sum(1.0 / rates))


def _class_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

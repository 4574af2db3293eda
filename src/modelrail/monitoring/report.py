"""What a monitoring check found: drift per feature, the prediction distribution and live
metrics, for a whole time range and per time window, with a status for each.

These are plain frozen values: ``Client.monitor`` returns them, ``modelrail monitor`` renders
them, a check is stored as their JSON (``to_json`` / ``from_json``; the keys are stable, scripts
read them) and the dashboard, the Prometheus gauges and the live-data gates read them back.

Statuses, from best to worst: ``ok``, ``watch``, ``alert``; ``no data`` (nothing logged, or no
labels yet) and ``no reference`` (a version registered before reference profiles) say a
comparison could not be made, which is neither good nor bad.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OK = "ok"
WATCH = "watch"
ALERT = "alert"
NO_DATA = "no data"
NO_REFERENCE = "no reference"
# Which status wins when several are combined (an alert anywhere is the report's alert).
_RANK = {NO_DATA: 0, NO_REFERENCE: 0, OK: 1, WATCH: 2, ALERT: 3}
FORMAT = "modelrail.check.v1"


def worst(statuses: Iterable[str]) -> str:
    """The most serious of ``statuses``; ``no data`` when there is none to judge."""
    found = [s for s in statuses if s in _RANK]
    if not found:
        return NO_DATA
    top = max(found, key=lambda s: _RANK[s])
    if _RANK[top] == 0:
        # Only missing comparisons: say which one when they agree.
        return NO_REFERENCE if all(s == NO_REFERENCE for s in found) else NO_DATA
    return top


@dataclass(frozen=True)
class FeatureDrift:
    """One input column (or the predictions) now against the reference profile."""

    feature: str
    kind: str  # "numeric" | "categorical"
    reference: str  # a short summary of the reference, e.g. "mean 31.2", "basic 54% pro 46%"
    current: str  # the same summary of the logged values
    rows: int  # logged rows compared
    missing_rate: float  # share of those rows without a value
    psi: float | None  # population stability index over the reference's bins
    statistic: str | None  # "ks" (numeric) | "js" (categorical)
    statistic_value: float | None
    p_value: float | None  # of the KS test; None for JS
    status: str
    threshold: str | None = None  # the bound crossed, e.g. ">= 0.2"; None when ok

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "reference": self.reference,
            "current": self.current,
            "rows": self.rows,
            "missing_rate": self.missing_rate,
            "psi": self.psi,
            "statistic": self.statistic,
            "statistic_value": self.statistic_value,
            "p_value": self.p_value,
            "status": self.status,
            "threshold": self.threshold,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureDrift:
        return cls(
            feature=str(data["feature"]),
            kind=str(data["kind"]),
            reference=str(data["reference"]),
            current=str(data["current"]),
            rows=int(data["rows"]),
            missing_rate=float(data["missing_rate"]),
            psi=_number(data.get("psi")),
            statistic=data.get("statistic"),
            statistic_value=_number(data.get("statistic_value")),
            p_value=_number(data.get("p_value")),
            status=str(data["status"]),
            threshold=data.get("threshold"),
        )


@dataclass(frozen=True)
class LiveMetric:
    """One metric computed on labelled predictions, against the version's logged value."""

    name: str
    reference: float | None  # the value the version's run logged (test data); None if none
    value: float | None  # on labelled predictions; None when it cannot be computed
    labelled: int  # labelled predictions it was computed on
    threshold: str | None  # the policy's bound, e.g. "< 0.88" (alert below 0.88)
    status: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": self.reference,
            "value": self.value,
            "labelled": self.labelled,
            "threshold": self.threshold,
            "status": self.status,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LiveMetric:
        return cls(
            name=str(data["name"]),
            reference=_number(data.get("reference")),
            value=_number(data.get("value")),
            labelled=int(data["labelled"]),
            threshold=data.get("threshold"),
            status=str(data["status"]),
        )


@dataclass(frozen=True)
class WindowReport:
    """Everything logged in ``[start, end)`` (the whole range, one window, or one version)."""

    start: float
    end: float
    versions: tuple[int, ...]  # versions that answered the logged rows
    requests: float  # requests estimated from the logged ones and their sample rate
    rows: int  # logged rows
    features: tuple[FeatureDrift, ...]
    prediction: FeatureDrift | None
    live: tuple[LiveMetric, ...]
    reference_version: int | None = None  # whose reference profile and metrics it is judged by
    labelled: int = 0  # logged rows that have a label

    @property
    def status(self) -> str:
        drift = [f.status for f in self.features]
        if self.prediction is not None:
            drift.append(self.prediction.status)
        return worst([*drift, *(m.status for m in self.live)])

    def feature(self, name: str) -> FeatureDrift | None:
        return next((f for f in self.features if f.feature == name), None)

    def metric(self, name: str) -> LiveMetric | None:
        return next((m for m in self.live if m.name == name), None)

    @property
    def max_psi(self) -> float | None:
        """The largest input-feature PSI (what a drift gate compares), None when none."""
        values = [f.psi for f in self.features if f.psi is not None]
        return max(values) if values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "versions": list(self.versions),
            "reference_version": self.reference_version,
            "requests": self.requests,
            "rows": self.rows,
            "labelled": self.labelled,
            "status": self.status,
            "features": [f.to_json() for f in self.features],
            "prediction": None if self.prediction is None else self.prediction.to_json(),
            "live": [m.to_json() for m in self.live],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowReport:
        prediction = data.get("prediction")
        reference = data.get("reference_version")
        return cls(
            start=float(data["start"]),
            end=float(data["end"]),
            versions=tuple(int(v) for v in data["versions"]),
            requests=float(data["requests"]),
            rows=int(data["rows"]),
            features=tuple(FeatureDrift.from_json(f) for f in data["features"]),
            prediction=None if prediction is None else FeatureDrift.from_json(prediction),
            live=tuple(LiveMetric.from_json(m) for m in data["live"]),
            reference_version=None if reference is None else int(reference),
            labelled=int(data.get("labelled", 0)),
        )


@dataclass(frozen=True)
class MonitorReport:
    """A monitoring check of a model's logged traffic over ``[since, until)``.

    ``overall`` covers the whole range; ``windows`` cut it into consecutive windows (empty
    unless asked for); ``by_version`` has one entry per version that answered, each judged by
    its own reference profile and logged metrics. ``alerts`` says in words what crossed an
    alert threshold in ``overall``.
    """

    model: str
    environment: str | None
    version: int  # the reference version: what the environment holds, or the one named
    reference_label: str  # which data the reference profile describes, e.g. "train 1.2"
    since: float
    until: float
    overall: WindowReport
    windows: tuple[WindowReport, ...]
    alerts: tuple[str, ...]
    by_version: tuple[WindowReport, ...] = ()
    drift_watch: float = 0.1
    drift_alert: float = 0.2
    checked_at: float = 0.0

    @property
    def status(self) -> str:
        return self.overall.status

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model,
            "environment": self.environment,
            "version": self.version,
            "reference_label": self.reference_label,
            "since": self.since,
            "until": self.until,
            "checked_at": self.checked_at,
            "status": self.status,
            "drift_watch": self.drift_watch,
            "drift_alert": self.drift_alert,
            "alerts": list(self.alerts),
            "overall": self.overall.to_json(),
            "windows": [w.to_json() for w in self.windows],
            "by_version": [w.to_json() for w in self.by_version],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MonitorReport:
        """A report ``to_json`` wrote; ``KeyError`` / ``ValueError`` / ``TypeError`` when it
        is not one (the reader says which file)."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a monitoring check (format {data.get('format')!r})")
        environment = data.get("environment")
        return cls(
            model=str(data["model"]),
            environment=None if environment is None else str(environment),
            version=int(data["version"]),
            reference_label=str(data["reference_label"]),
            since=float(data["since"]),
            until=float(data["until"]),
            overall=WindowReport.from_json(data["overall"]),
            windows=tuple(WindowReport.from_json(w) for w in data["windows"]),
            alerts=tuple(str(a) for a in data["alerts"]),
            by_version=tuple(WindowReport.from_json(w) for w in data.get("by_version", [])),
            drift_watch=float(data.get("drift_watch", 0.1)),
            drift_alert=float(data.get("drift_alert", 0.2)),
            checked_at=float(data.get("checked_at", 0.0)),
        )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)

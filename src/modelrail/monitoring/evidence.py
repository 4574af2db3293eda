"""Evidence from live traffic for the promotion gates: how many requests a candidate
answered before it is promoted, how far its inputs drifted from its own reference profile,
and its live metric on labelled traffic against the incumbent's.

The candidate's traffic is what it answered in the previous environment, served or as a
shadow, and what it answered as a shadow in the target environment itself (a shadow of
prod is the usual rehearsal); batch scoring is not traffic. The incumbent's is what it
served in the target environment. Requests are estimated from the logged ones: each logged
request (its row 0) stands for ``1 / sample_rate`` requests.

Everything is read from the monitoring folder the caller names (``Settings.monitoring_folder``
of the machine that evaluates the gates): a team server that did not share ``[monitoring]
root`` with the serving machines finds no logs, and the gates say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.entities import ModelVersion
from modelrail.errors import MonitoringDataError
from modelrail.monitoring.drift import feature_drift
from modelrail.monitoring.live import live_metrics, metric_name
from modelrail.monitoring.logfiles import (
    INPUT_PREFIX,
    PREDICTIONS,
    log_files,
    read_feedback,
    read_log,
)
from modelrail.monitoring.monitor import Reference, task_of
from modelrail.monitoring.profiles import ReferenceProfile

SERVED = "serve"
SHADOW = "shadow"
# Metrics where less is better: a candidate beats the incumbent by being at most its value.
LOWER_IS_BETTER = frozenset(
    {
        "false_positive_rate",
        "log_loss",
        "mae",
        "mse",
        "rmse",
        "mape",
        "median_absolute_error",
        "max_error",
    }
)
_BASE_COLUMNS = ("request_id", "row", "time", "version", "environment", "source", "sample_rate")
_PREDICTION_COLUMNS = ("prediction", "prediction_value")


@dataclass(frozen=True)
class Traffic:
    """What one version's logged traffic shows."""

    version: int
    where: str  # in words, e.g. "staging, or as a shadow in prod"
    requests: float  # estimated from the logged ones and their sample rates
    shadowed: float  # of those, answered as a shadow
    logged: int  # logged requests (row 0)
    drift: float | None = None  # the largest PSI of an input feature; None: not measured
    drift_feature: str | None = None
    profiled: bool = True  # whether the version has a reference profile of its data
    compared: int = 0  # input features compared with the profile
    metric_value: float | None = None  # the gate's metric on labelled traffic
    labelled: int = 0  # labelled rows it was computed on


@dataclass(frozen=True)
class LiveEvidence:
    """The candidate's traffic and, when one is in place and asked for, the incumbent's."""

    model: str
    root: str  # the monitoring folder read
    metric: str  # the metric compared (the policy's primary metric)
    logged: bool  # whether the model has any prediction log there
    candidate: Traffic
    incumbent: Traffic | None
    problem: str | None = None  # a log that could not be read, in words

    @property
    def lower_is_better(self) -> bool:
        return metric_name(self.metric)[0] in LOWER_IS_BETTER


@dataclass(frozen=True)
class Subject:
    """A version whose traffic is gathered, with its reference profile (None: none)."""

    version: ModelVersion
    profile: ReferenceProfile | None


def gather(
    root: str | Path,
    *,
    candidate: Subject,
    incumbent: Subject | None,
    previous: str | None,
    target: str,
    metric: str,
    drift: bool,
    live_metric: bool,
) -> LiveEvidence:
    """The evidence the live-data gates judge; ``drift`` and ``live_metric`` say which parts
    are needed (the request count always is), so nothing else is read or computed."""
    model = candidate.version.model
    where = _where(previous, target)
    empty = Traffic(candidate.version.version, where, 0.0, 0.0, 0)
    if not log_files(root, PREDICTIONS, model):
        return LiveEvidence(model, str(root), metric, False, empty, None)
    reference = _reference(candidate)
    columns = list(_BASE_COLUMNS)
    if live_metric:
        columns += _PREDICTION_COLUMNS
    if drift and reference.dataset is not None:
        columns += [INPUT_PREFIX + name for name in reference.dataset.columns]
    since = candidate.version.created_at
    if live_metric and incumbent is not None:
        since = min(since, incumbent.version.created_at)
    try:
        table = read_log(root, PREDICTIONS, model, since=since, columns=columns)
        labels = read_feedback(root, model, since=since) if live_metric else None
    except MonitoringDataError as exc:
        return LiveEvidence(model, str(root), metric, True, empty, None, problem=exc.message)
    assert table is not None  # there are files
    ours = _candidate_rows(table, candidate.version.version, previous, target)
    found = _traffic(ours, reference, where, labels, metric, drift=drift)
    held = None
    if live_metric and incumbent is not None:
        theirs = _rows(table, incumbent.version.version, [(target, (SERVED,))])
        held = _traffic(theirs, _reference(incumbent), target, labels, metric, drift=False)
    return LiveEvidence(model, str(root), metric, True, found, held)


def _where(previous: str | None, target: str) -> str:
    if previous is None:
        return f"as a shadow in {target}"
    return f"{previous}, or as a shadow in {target}"


def _reference(subject: Subject) -> Reference:
    version = subject.version
    outputs = version.signature.outputs
    output_type = outputs[0].dtype if outputs else None
    task = task_of(tuple(version.signature.classes), output_type, subject.profile)
    return Reference(version.version, subject.profile, task)


def _candidate_rows(table: pa.Table, version: int, previous: str | None, target: str) -> pa.Table:
    places: list[tuple[str, tuple[str, ...]]] = [(target, (SHADOW,))]
    if previous is not None:
        places.insert(0, (previous, (SERVED, SHADOW)))
    return _rows(table, version, places)


def _rows(table: pa.Table, version: int, places: list[tuple[str, tuple[str, ...]]]) -> pa.Table:
    """Rows of ``version`` logged in any of ``places`` (environment, the sources counted)."""
    # As text: a column that every file left empty reads as Arrow's null type.
    environments = table.column("environment").cast(pa.string())
    logged_as = table.column("source").cast(pa.string())
    mask: Any = None
    for environment, sources in places:
        here = pc.and_(
            pc.equal(environments, environment),
            pc.is_in(logged_as, value_set=pa.array(sources, pa.string())),
        )
        mask = here if mask is None else pc.or_(mask, here)
    mask = pc.and_(mask, pc.equal(table.column("version"), version))
    return table.filter(pc.fill_null(mask, False))


def _traffic(
    rows: pa.Table,
    reference: Reference,
    where: str,
    labels: pa.Table | None,
    metric: str,
    *,
    drift: bool,
) -> Traffic:
    requests, shadowed, logged = _requests(rows)
    largest, feature, compared = (None, None, 0)
    if drift:
        largest, feature, compared = _largest_drift(rows, reference)
    value, labelled = (None, 0)
    if labels is not None:
        value, labelled = _live_value(rows, labels, reference, metric)
    return Traffic(
        version=reference.version,
        where=where,
        requests=requests,
        shadowed=shadowed,
        logged=logged,
        drift=largest,
        drift_feature=feature,
        profiled=reference.dataset is not None,
        compared=compared,
        metric_value=value,
        labelled=labelled,
    )


def _requests(rows: pa.Table) -> tuple[float, float, int]:
    """Requests estimated from the logged ones, those answered as a shadow, and the logged
    requests themselves."""
    first = rows.filter(pc.fill_null(pc.equal(rows.column("row"), 0), False))
    if first.num_rows == 0:
        return 0.0, 0.0, 0
    rates = np.asarray(
        pc.cast(first.column("sample_rate"), pa.float64()).to_numpy(zero_copy_only=False),
        dtype=np.float64,
    )
    # A rate that is missing or not in (0, 1] was never a sampling decision: count it once.
    weights = np.where(np.isfinite(rates) & (rates > 0) & (rates <= 1), 1.0 / rates, 1.0)
    shadow = np.asarray(
        pc.fill_null(pc.equal(first.column("source").cast(pa.string()), SHADOW), False).to_numpy(
            zero_copy_only=False
        ),
        dtype=bool,
    )
    return float(weights.sum()), float(weights[shadow].sum()), first.num_rows


def _largest_drift(rows: pa.Table, reference: Reference) -> tuple[float | None, str | None, int]:
    """The largest PSI among the logged input features the reference profile knows, that
    feature, and how many features were compared."""
    dataset = reference.dataset
    if dataset is None or rows.num_rows == 0:
        return None, None, 0
    largest: tuple[float, str] | None = None
    compared = 0
    for name, profile in dataset.columns.items():
        column = INPUT_PREFIX + name
        if column not in rows.column_names or rows.column(column).null_count == rows.num_rows:
            continue  # not logged (excluded by policy, or by a version that lacked it)
        found = feature_drift(name, profile, rows.column(column), watch=math.inf, alert=math.inf)
        if found.psi is None:
            continue
        compared += 1
        if largest is None or found.psi > largest[0]:
            largest = (found.psi, name)
    return (None, None, 0) if largest is None else (largest[0], largest[1], compared)


def _live_value(
    rows: pa.Table, labels: pa.Table, reference: Reference, metric: str
) -> tuple[float | None, int]:
    """``metric`` on the labelled rows, and how many rows had a label."""
    if rows.num_rows == 0 or labels.num_rows == 0:
        return None, 0
    left = rows.select(["request_id", "row", *_PREDICTION_COLUMNS])
    right = labels.select(["request_id", "row", "label", "label_value"])
    labelled = left.join(right, keys=["request_id", "row"], join_type="inner")
    if labelled.num_rows == 0:
        return None, 0
    # A bound no value can cross makes live_metrics compute the metric even when the
    # version's run did not log it; only the value is used here.
    found = live_metrics(
        labelled, reference.task, logged={}, min_live={metric: -math.inf}, max_live={}
    )
    wanted = metric_name(metric)[0]
    value = next((m.value for m in found if m.name == wanted), None)
    return value, labelled.num_rows

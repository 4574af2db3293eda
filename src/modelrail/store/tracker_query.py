"""The model tracker: one row per model version (or per run that registered none)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, exists, func, select

from modelrail.entities import COMPONENT_ROLES, TrackerPage, TrackerRow
from modelrail.errors import InvalidInputError, RunNotFoundError
from modelrail.store import tables as t
from modelrail.store.codec import loads
from modelrail.store.db import Database

PREFERRED_METRICS = ("accuracy", "false_positive_rate")
_BUILTIN_SORTS = ("started", "version")
COMPONENT_SORT_PREFIX = "component:"
DEFAULT_METRIC_COLUMNS = 4


@dataclass(frozen=True)
class MetricRange:
    """Keep runs whose latest ``key`` lies in ``[low, high]`` (either end may be open).

    A run that never logged ``key`` is left out."""

    key: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class TrackerQuery:
    """Which rows of the tracker to read, in what order.

    ``sort`` is ``started``, ``version`` (model name, then version), ``component:ROLE``
    (the component's ``MAJOR.MINOR``, e.g. ``component:data:train``) or a metric name.
    ``tags`` keeps runs carrying every ``(key, value)`` pair; a ``None`` value only needs
    the key."""

    experiment: str | None = None
    model: str | None = None
    status: str | None = None
    metrics: tuple[str, ...] = ()
    sort: str = "started"
    ascending: bool = False
    limit: int = 50
    offset: int = 0
    only_models: bool = False
    metric_ranges: tuple[MetricRange, ...] = ()
    tags: tuple[tuple[str, str | None], ...] = ()


def tracker_page(db: Database, query: TrackerQuery) -> TrackerPage:
    if query.limit < 0 or query.offset < 0:
        raise InvalidInputError("limit and offset must be zero or more")
    base = _filtered(query)
    ordered = _apply_sort(base, query)
    with db.read() as conn:
        total = int(conn.execute(select(func.count()).select_from(base.subquery())).scalar_one())
        page = conn.execute(ordered.limit(query.limit).offset(query.offset)).all()
        run_ids = list({r.id for r in page})
        labels, datasets = _component_labels(conn, run_ids)
        metrics = _latest_metrics(conn, run_ids)
        tags = _tags(conn, run_ids)
    metric_keys = query.metrics or _default_metric_keys(metrics)
    rows = tuple(
        TrackerRow(
            run_id=r.id,
            experiment=r.experiment,
            status=r.status,
            started_at=float(r.started_at),
            model=r.model,
            version=None if r.version is None else int(r.version),
            architecture=r.architecture,
            dataset=datasets.get(r.id),
            labels=labels.get(r.id, {}),
            metrics=metrics.get(r.id, {}),
            tags=tags.get(r.id, {}),
        )
        for r in page
    )
    return TrackerPage(rows=rows, total=total, metric_keys=tuple(metric_keys))


def metric_extremes(
    db: Database, query: TrackerQuery, keys: Iterable[str]
) -> dict[str, tuple[float, float]]:
    """The smallest and largest latest value of each metric over every row ``query``
    matches (not only one page of them); metrics no matching run logged are left out."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    matching = _filtered(query).with_only_columns(t.runs.c.id).distinct()
    m = t.run_latest_metrics
    statement = (
        select(m.c.key, func.min(m.c.value), func.max(m.c.value))
        .where(m.c.key.in_(wanted), m.c.run_id.in_(matching.scalar_subquery()))
        .group_by(m.c.key)
    )
    with db.read() as conn:
        return {
            str(key): (float(low), float(high))
            for key, low, high in conn.execute(statement)
            if low is not None
        }


def metric_names(db: Database) -> list[str]:
    """Every metric key any run has logged, sorted."""
    m = t.run_latest_metrics
    with db.read() as conn:
        return [
            str(k) for k in conn.execute(select(m.c.key).distinct().order_by(m.c.key)).scalars()
        ]


def _filtered(query: TrackerQuery) -> Select[Any]:
    runs, mv, models = t.runs, t.model_versions, t.models
    base: Select[Any] = (
        select(
            runs.c.id,
            runs.c.status,
            runs.c.started_at,
            runs.c.architecture,
            t.experiments.c.name.label("experiment"),
            models.c.name.label("model"),
            mv.c.version,
        )
        .join(t.experiments, t.experiments.c.id == runs.c.experiment_id)
        .outerjoin(mv, mv.c.run_id == runs.c.id)
        .outerjoin(models, models.c.id == mv.c.model_id)
    )
    if query.experiment is not None:
        base = base.where(t.experiments.c.name == query.experiment)
    if query.model is not None:
        base = base.where(models.c.name == query.model)
    if query.status is not None:
        base = base.where(runs.c.status == query.status)
    if query.only_models:
        base = base.where(mv.c.id.is_not(None))
    for wanted in query.metric_ranges:
        m = t.run_latest_metrics
        conditions = [m.c.run_id == runs.c.id, m.c.key == wanted.key]
        if wanted.low is not None:
            conditions.append(m.c.value >= wanted.low)
        if wanted.high is not None:
            conditions.append(m.c.value <= wanted.high)
        base = base.where(exists().where(*conditions))
    for key, value in query.tags:
        tags = t.run_tags
        conditions = [tags.c.run_id == runs.c.id, tags.c.key == key]
        if value is not None:
            conditions.append(tags.c.value == value)
        base = base.where(exists().where(*conditions))
    return base


def _apply_sort(base: Select[Any], query: TrackerQuery) -> Select[Any]:
    runs = t.runs

    def direction(column: Any) -> Any:
        return column.asc() if query.ascending else column.desc()

    if query.sort == "started":
        return base.order_by(direction(runs.c.started_at), runs.c.id)
    if query.sort == "version":
        return base.order_by(
            t.models.c.name, direction(t.model_versions.c.version), direction(runs.c.started_at)
        )
    if query.sort.startswith(COMPONENT_SORT_PREFIX):
        return _component_sort(base, query, query.sort.removeprefix(COMPONENT_SORT_PREFIX))
    if not query.sort or query.sort.startswith("-"):
        raise InvalidInputError(
            f"cannot sort by {query.sort!r}: use 'started', 'version' or a metric name"
        )
    latest = t.run_latest_metrics.alias("sort_metric")
    joined = base.outerjoin(latest, and_(latest.c.run_id == runs.c.id, latest.c.key == query.sort))
    # Runs without the metric go last whichever way the sort runs.
    value = latest.c.value.asc() if query.ascending else latest.c.value.desc()
    return joined.order_by(latest.c.value.is_(None), value, runs.c.started_at.desc(), runs.c.id)


def _component_sort(base: Select[Any], query: TrackerQuery, role: str) -> Select[Any]:
    if role not in COMPONENT_ROLES:
        raise InvalidInputError(
            f"cannot sort by component {role!r}: use one of {', '.join(COMPONENT_ROLES)}"
        )
    rc = t.run_components.alias("sort_component")
    cv = t.component_versions.alias("sort_version")
    joined = base.outerjoin(rc, and_(rc.c.run_id == t.runs.c.id, rc.c.role == role)).outerjoin(
        cv, cv.c.id == rc.c.component_version_id
    )
    order = [c.asc() if query.ascending else c.desc() for c in (cv.c.major, cv.c.minor)]
    # Runs without the component go last whichever way the sort runs.
    return joined.order_by(cv.c.major.is_(None), *order, t.runs.c.started_at.desc(), t.runs.c.id)


def _component_labels(
    conn: Any, run_ids: list[str]
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    datasets: dict[str, str] = {}
    if not run_ids:
        return labels, datasets
    cv, rc = t.component_versions, t.run_components
    rows = conn.execute(
        select(rc.c.run_id, rc.c.role, cv.c.major, cv.c.minor, cv.c.details)
        .join(cv, cv.c.id == rc.c.component_version_id)
        .where(rc.c.run_id.in_(run_ids))
    )
    for run_id, role, major, minor, details in rows:
        labels[run_id][role] = f"{major}.{minor}"
        if role == "data:train" or (role.startswith("data:") and run_id not in datasets):
            name = loads(details).get("dataset")
            if name:
                datasets[run_id] = name
    return labels, datasets


def _latest_metrics(conn: Any, run_ids: list[str]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = defaultdict(dict)
    if run_ids:
        m = t.run_latest_metrics
        for run_id, key, value in conn.execute(
            select(m.c.run_id, m.c.key, m.c.value).where(m.c.run_id.in_(run_ids))
        ):
            found[run_id][key] = float(value)
    return found


def _tags(conn: Any, run_ids: list[str]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = defaultdict(dict)
    if run_ids:
        tags = t.run_tags
        for run_id, key, value in conn.execute(
            select(tags.c.run_id, tags.c.key, tags.c.value).where(tags.c.run_id.in_(run_ids))
        ):
            found[run_id][key] = value
    return found


def _default_metric_keys(metrics: dict[str, dict[str, float]]) -> list[str]:
    present = {key for values in metrics.values() for key in values}
    chosen = [key for key in PREFERRED_METRICS if key in present]
    chosen += sorted(present - set(chosen))
    return chosen[:DEFAULT_METRIC_COLUMNS]


def best_run_query(metric: str, *, minimize: bool, experiment: str | None) -> TrackerQuery:
    """The tracker page whose one row is the run with the best latest ``metric``."""
    return TrackerQuery(experiment=experiment, sort=metric, ascending=minimize, limit=1)


def best_run_id(page: TrackerPage, metric: str, experiment: str | None) -> str:
    """The run of ``best_run_query``'s page; none that logged ``metric`` is an error."""
    if not page.rows or metric not in page.rows[0].metrics:
        scope = f" in experiment {experiment!r}" if experiment else ""
        raise RunNotFoundError(f"no run{scope} has logged the metric {metric!r}")
    return page.rows[0].run_id

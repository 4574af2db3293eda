"""Comparing runs (``/compare?run=A&run=B[&run=C...]``): one column per run, the rows
that differ highlighted (components, params, metrics, package versions), and the curves
of every stepped metric overlaid, one colour per run.

What differs comes from ``tracking.diff``: each run is diffed against the first one, and
a row differs when any of those diffs names it (if two later runs differed from each other
but not from the first, they would be equal, so nothing is missed).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response

from modelrail.entities import COMPONENT_ROLES, Run
from modelrail.errors import InvalidInputError
from modelrail.policy import PromotionPolicy
from modelrail.tracking.diff import diff_runs
from modelrail.tracking.tracker_columns import format_metric, lower_is_better
from modelrail.ui.charts import Series, colour, line_chart
from modelrail.ui.pages_runs import stepped_metrics
from modelrail.ui.state import Page
from modelrail.ui.templating import format_value

MAX_RUNS = 8


@dataclass(frozen=True)
class Row:
    key: str
    values: tuple[str, ...]
    differs: bool
    notes: tuple[str, ...] = ()
    best: tuple[bool, ...] = ()


def compare(page: Page) -> Response:
    wanted = list(dict.fromkeys(page.params("run")))
    if len(wanted) < 2:
        raise InvalidInputError(
            "pick at least two runs to compare: tick them in the tracker, then Compare"
        )
    if len(wanted) > MAX_RUNS:
        raise InvalidInputError(f"compare at most {MAX_RUNS} runs at once, not {len(wanted)}")
    client = page.client
    runs = list({run.id: run for run in (client.get_run(i) for i in wanted)}.values())
    if len(runs) < 2:
        raise InvalidInputError("these ids name the same run: pick at least two different runs")
    base = runs[0]
    diffs = [diff_runs(base, other) for other in runs[1:]]
    notes: dict[str, list[str]] = {}
    for other, diff in zip(runs[1:], diffs, strict=True):
        for change in diff.components:
            notes.setdefault(change.role, []).append(f"{other.short_id}: {change.note}")
    changed_params = {c.key for d in diffs for c in d.params}
    changed_metrics = {c.key for d in diffs for c in d.metrics}
    changed_packages = sorted({c.key for d in diffs for c in d.packages})
    policy = client.policy
    histories = [stepped_metrics(client.metric_history(run.id)) for run in runs]
    chart_keys = sorted({key for history in histories for key in history})
    charts = [
        line_chart(
            key,
            [
                Series(_legend(run), history.get(key, []), colour(index))
                for index, (run, history) in enumerate(zip(runs, histories, strict=True))
            ],
        )
        for key in chart_keys
    ]
    return page.render(
        "compare.html",
        title="Compare runs",
        runs=[(run, colour(index)) for index, run in enumerate(runs)],
        components=_component_rows(runs, notes),
        params=_rows(runs, sorted({k for r in runs for k in r.params}), changed_params, "params"),
        metrics=_metric_rows(runs, changed_metrics, policy),
        packages=[
            Row(name, tuple(_packages(run).get(name, "-") for run in runs), True)
            for name in changed_packages
        ],
        same_packages=len(set(_packages(base)) - set(changed_packages)),
        charts=charts,
    )


def _legend(run: Run) -> str:
    versions = ", ".join(f"{v.model}:{v.version}" for v in run.model_versions)
    return f"{run.short_id} ({versions})" if versions else run.short_id


def _component_rows(runs: list[Run], notes: dict[str, list[str]]) -> list[Row]:
    present = {role for run in runs for role in run.components}
    roles = [r for r in COMPONENT_ROLES if r in present] + sorted(present - set(COMPONENT_ROLES))
    rows = []
    for role in roles:
        values = []
        for run in runs:
            component = run.components.get(role)
            values.append(component.label if component else "-")
        rows.append(Row(role, tuple(values), role in notes, tuple(notes.get(role, ()))))
    return rows


def _rows(runs: list[Run], keys: list[str], changed: set[str], field: str) -> list[Row]:
    return [
        Row(
            key,
            tuple(
                format_value(getattr(run, field)[key]) if key in getattr(run, field) else "-"
                for run in runs
            ),
            key in changed,
        )
        for key in keys
    ]


def _metric_rows(runs: list[Run], changed: set[str], policy: PromotionPolicy) -> list[Row]:
    rows = []
    for key in sorted({k for run in runs for k in run.metrics}):
        values = [run.metrics.get(key) for run in runs]
        present = [v for v in values if v is not None]
        best_value = None
        if present and key in changed:
            best_value = min(present) if lower_is_better(key, policy) else max(present)
        rows.append(
            Row(
                key,
                tuple(format_metric(key, v) for v in values),
                key in changed,
                best=tuple(v is not None and v == best_value for v in values),
            )
        )
    return rows


def _packages(run: Run) -> dict[str, str]:
    environment = run.components.get("environment")
    packages = environment.details.get("packages", {}) if environment else {}
    return {str(k): str(v) for k, v in packages.items()} if isinstance(packages, dict) else {}

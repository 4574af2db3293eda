"""The model tracker's columns, shared by ``modelrail runs`` and the web dashboard: which
columns there are, the text of each cell, how a metric value is shown, and whether a
smaller value of a metric is the better one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from modelrail.entities import TrackerRow
from modelrail.policy import PromotionPolicy
from modelrail.portability.reproduce_plan import REPRODUCTION_TAG

ROLE_COLUMNS = (
    ("data:train", "train"),
    ("data:validation", "validation"),
    ("params", "params"),
    ("data:test", "test"),
)
_PERCENT_HINTS = ("accuracy", "precision", "recall", "f1", "auc", "rate")
# Names of metrics where a smaller value is better, unless the gates say otherwise.
_LOWER_IS_BETTER_HINTS = (
    "loss",
    "error",
    "false_positive",
    "false_negative",
    "fpr",
    "fnr",
    "mse",
    "mae",
    "rmse",
    "mape",
    "latency",
    "perplexity",
)


def format_metric(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if 0.0 <= value <= 1.0 and any(hint in key.lower() for hint in _PERCENT_HINTS):
        return f"{value * 100:.1f}%"
    return f"{value:.4g}"


def lower_is_better(key: str, policy: PromotionPolicy | None = None) -> bool:
    """True for metrics such as losses, errors and false positive rates.

    The gates decide first: a metric that some environment caps with ``max`` and none
    bounds with ``min`` is better small, and the other way round. Otherwise the name
    decides (``loss``, ``error``, ``false_positive_rate``, ``rmse``, ...)."""
    if policy is not None:
        gates = [env.gates for env in policy.environments.values()]
        capped = any(key in g.max_metrics for g in gates)
        floored = any(key in g.min_metrics for g in gates) or key == policy.primary_metric
        if capped != floored:
            return capped
    name = key.lower()
    return any(hint in name for hint in _LOWER_IS_BETTER_HINTS)


def header(metric_keys: Sequence[str]) -> list[str]:
    return [
        "model",
        "version",
        "code (architecture)",
        "dataset",
        *(label for _, label in ROLE_COLUMNS),
        *metric_keys,
        "run",
        "status",
    ]


def code_cell(row: TrackerRow) -> str:
    code = row.labels.get("code", "-")
    return f"{row.architecture} ({code})" if row.architecture else code


def cells(row: TrackerRow, metric_keys: Sequence[str], *, plain: bool) -> list[str]:
    """One row's cells under :func:`header`: ``plain`` gives raw numbers and full run ids
    (CSV), otherwise metrics are formatted and run ids shortened."""
    metrics = [
        (str(row.metrics.get(k, "")) if plain else format_metric(k, row.metrics.get(k)))
        for k in metric_keys
    ]
    return [
        row.model or "-",
        "-" if row.version is None else str(row.version),
        code_cell(row),
        row.dataset or "-",
        *(row.labels.get(role, "-") for role, _ in ROLE_COLUMNS),
        *metrics,
        row.run_id if plain else _run_cell(row),
        row.status,
    ]


def _run_cell(row: TrackerRow) -> str:
    original = row.tags.get(REPRODUCTION_TAG)
    return f"{row.run_id[:8]} (reproduces {original[:8]})" if original else row.run_id[:8]


def component_note(details: object) -> str:
    """A component version's details in a few words: rows and columns of a dataset, the
    Python and package count of an environment, the architecture and commit of code, the
    keys of params."""
    if not isinstance(details, Mapping):
        return ""
    if "rows" in details:
        columns = len(details.get("schema", []))
        return f"{details.get('dataset')}: {details['rows']} rows x {columns} columns"
    if "packages" in details and isinstance(details["packages"], Mapping):
        return f"python {details.get('python')}, {len(details['packages'])} packages"
    if "architecture" in details:
        commit = details.get("commit")
        return f"{details.get('architecture')} @ {str(commit)[:10] if commit else 'no git'}"
    if "keys" in details:
        return ", ".join(str(key) for key in details["keys"])
    return ""


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"

"""The run page (``/runs/{id}``) and its artifact downloads.

Everything about one run: params, latest metric values, a chart of every metric logged at
more than one step, each component with its version label and fingerprint, the packages
of its environment, its artifacts (images shown inline), the git commit, and the model
versions it registered with the environments holding each of them now.
"""

from __future__ import annotations

import mimetypes
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

from starlette.responses import Response

from modelrail.client import Client
from modelrail.entities import COMPONENT_ROLES, MetricPoint, ModelVersionRef, Run
from modelrail.tracking.tracker_columns import component_note
from modelrail.ui.charts import Series, colour, line_chart
from modelrail.ui.state import Page

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"})
# An artifact is the user's file: it may show itself, and run nothing.
_ARTIFACT_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


@dataclass(frozen=True)
class Deployment:
    model: str
    version: int
    environments: tuple[str, ...]


def run_page(page: Page) -> Response:
    client = page.client
    run = client.get_run(page.path_param("run_id"))
    history = client.metric_history(run.id)
    stepped = stepped_metrics(history)
    charts = [
        line_chart(key, [Series(run.short_id, points, colour(0))])
        for key, points in sorted(stepped.items())
    ]
    environment = run.components.get("environment")
    packages = environment.details.get("packages", {}) if environment else {}
    git = run.provenance.get("git") or {}
    entry = run.provenance.get("entry_point") or {}
    python = run.provenance.get("environment") or {}
    return page.render(
        "run.html",
        title=f"Run {run.short_id}",
        run=run,
        components=ordered_components(run),
        note=component_note,
        charts=charts,
        steps={key: len(points) for key, points in stepped.items()},
        packages=sorted(packages.items()) if isinstance(packages, dict) else [],
        environment_label=environment.label if environment else None,
        git=git,
        entry=entry,
        python=python,
        artifacts=[(a, artifact_link(run, a.path), _is_image(a.path)) for a in run.artifacts],
        deployments=deployments(client, run.model_versions),
    )


def artifact(page: Page) -> Response:
    path = page.path_param("path")
    # The bytes that were checked are the bytes sent: the file may change after a check.
    data = page.client.run_artifact(page.path_param("run_id"), path)
    inline = page.param("inline") == "1" and _is_image(path)
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    disposition = "inline" if inline else "attachment"
    filename = quote(PurePosixPath(path).name)
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": f"{disposition}; filename*=utf-8''{filename}",
            "Content-Security-Policy": _ARTIFACT_CSP,
            "Cache-Control": "private",
        },
    )


def artifact_link(run: Run, path: str) -> str:
    return f"/runs/{run.id}/artifacts/{quote(path)}"


def stepped_metrics(history: Iterable[MetricPoint]) -> dict[str, list[tuple[float, float]]]:
    """Each metric logged at two or more steps, as (step, value) with the latest value of
    each step (``history`` is ordered by key, step and time)."""
    by_key: dict[str, dict[int, float]] = defaultdict(dict)
    for point in history:
        by_key[point.key][point.step] = point.value
    return {
        key: [(float(step), value) for step, value in sorted(values.items())]
        for key, values in by_key.items()
        if len(values) > 1
    }


def ordered_components(run: Run) -> list[tuple[str, object]]:
    roles = [r for r in COMPONENT_ROLES if r in run.components]
    roles += sorted(set(run.components) - set(roles))
    return [(role, run.components[role]) for role in roles]


def deployments(client: Client, versions: Iterable[ModelVersionRef]) -> list[Deployment]:
    """Each model version with the environments that hold it now, in chain order."""
    wanted = list(versions)
    if not wanted:
        return []
    chain = client.policy.chain
    board = client.board()
    found = []
    for version in wanted:
        held = {
            h.environment
            for h in board
            if h.model == version.model and h.version == version.version
        }
        ordered = tuple(e for e in chain if e in held) + tuple(sorted(held - set(chain)))
        found.append(Deployment(version.model, version.version, ordered))
    return found


def _is_image(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES

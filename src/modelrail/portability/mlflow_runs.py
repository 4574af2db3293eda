"""An MLflow run as modelrail's run record: the same id, times, params, tags and every
metric point, with MLflow's system tags for the code (git commit, branch, repository,
entry point) turned into the run's provenance."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from modelrail.entities import ArtifactRecord, MetricPoint
from modelrail.portability.mlflow_records import MlflowRun
from modelrail.portability.records import RunRecord

# MLflow's status -> modelrail's (a killed run did not finish: failed, with the reason).
_STATUSES = {
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FINISHED": "finished",
    "FAILED": "failed",
    "KILLED": "failed",
}
_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def modelrail_name(name: str) -> str:
    """An MLflow experiment or model name as a valid modelrail name: letters, digits, '.',
    '_' and '-', starting with a letter or digit, at most 128 (``/Users/ana/churn`` ->
    ``Users-ana-churn``)."""
    cleaned = _NAME_CHARACTERS.sub("-", name).strip("-._")[:128].rstrip("-._")
    return cleaned or "mlflow"


def provenance(run: MlflowRun, source: str) -> dict[str, Any]:
    tags = run.tags
    commit = tags.get("mlflow.source.git.commit")
    git = None
    if commit:
        git = {
            "root": None,
            "commit": commit,
            "branch": tags.get("mlflow.source.git.branch"),
            "remote": tags.get("mlflow.source.git.repoURL"),
            # MLflow does not record whether the tree had uncommitted changes.
            "dirty": None,
            "diff_sha256": None,
        }
    script = tags.get("mlflow.source.name") or None
    entry = tags.get("mlflow.project.entryPoint")
    return {
        "git": git,
        "entry_point": {
            "script": script,
            "arguments": [entry] if entry else [],
            "script_sha256": None,
            "interactive": tags.get("mlflow.source.type") == "NOTEBOOK",
        },
        "environment": None,
        "mlflow": {
            "run_id": run.run_id,
            "experiment_id": run.experiment_id,
            "store": source,
            "artifact_uri": run.artifact_uri,
            "status": run.status,
            "source_type": tags.get("mlflow.source.type"),
        },
    }


def run_record(
    run: MlflowRun,
    *,
    experiment: str,
    experiment_created_ms: int | None,
    artifacts: Sequence[ArtifactRecord],
    source: str,
) -> tuple[RunRecord, int]:
    """The record, and how many metric points were left out (NaN or infinite: MLflow keeps
    them, modelrail's metrics are finite numbers)."""
    points = [
        MetricPoint(key, value, step, stamp / 1000.0)
        for key, value, step, stamp in run.metrics
        if math.isfinite(value)
    ]
    started = (run.start_ms or run.end_ms or 0) / 1000.0
    status = _STATUSES.get(run.status.upper(), "finished")
    error = "killed in MLflow" if run.status.upper() == "KILLED" else None
    record = RunRecord(
        id=run.run_id.lower(),
        experiment=experiment,
        experiment_created_at=None
        if experiment_created_ms is None
        else experiment_created_ms / 1e3,
        name=run.name or run.run_id[:8],
        status=status,
        user=run.user or "mlflow",
        started_at=started,
        ended_at=None if run.end_ms is None else run.end_ms / 1000.0,
        error=error,
        provenance=provenance(run, source),
        params=dict(run.params),
        tags=dict(run.tags),
        metrics=tuple(points),
        artifacts=tuple(artifacts),
    )
    return record, len(run.metrics) - len(points)

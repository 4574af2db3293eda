"""What an MLflow tracking store holds, as plain records, whichever way it was read.

The readers (``mlflow_sql``, ``mlflow_files``, ``mlflow_rest``) turn a store into these;
the importer (``mlflow_import``) turns these into modelrail's records. Times are MLflow's
milliseconds since the epoch, converted to seconds only on the way in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# MLflow's RunStatus numbers (the file store keeps the number, the others the name).
RUN_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


@dataclass(frozen=True)
class MlflowExperiment:
    id: str
    name: str
    artifact_location: str
    created_ms: int | None
    deleted: bool = False
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlflowRunKey:
    """The little an import needs to plan: which runs there are, and which are deleted."""

    run_id: str
    experiment_id: str
    deleted: bool


@dataclass(frozen=True)
class MlflowRun:
    run_id: str
    experiment_id: str
    name: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    user: str
    start_ms: int | None
    end_ms: int | None
    artifact_uri: str
    params: dict[str, str]
    tags: dict[str, str]
    # Every point: (key, value, step, timestamp in ms); value may be NaN or infinite.
    metrics: list[tuple[str, float, int, int]]


@dataclass(frozen=True)
class MlflowModelVersion:
    model: str
    version: int
    run_id: str | None
    source: str
    storage_location: str | None
    stage: str | None  # legacy stage: None, Staging, Production, Archived
    status: str
    user: str | None
    description: str
    created_ms: int | None


@dataclass(frozen=True)
class MlflowRegisteredModel:
    name: str
    description: str
    created_ms: int | None
    versions: tuple[MlflowModelVersion, ...]
    aliases: dict[str, int]  # alias -> version


@dataclass(frozen=True)
class ArtifactEntry:
    """One file below an artifact location: its path relative to the location."""

    path: str
    size: int | None


class MlflowSource(Protocol):
    """An MLflow tracking store, read-only."""

    description: str

    def experiments(self) -> list[MlflowExperiment]:
        """Every experiment, deleted ones included (marked)."""

    def run_keys(self) -> list[MlflowRunKey]:
        """Every run, oldest first."""

    def runs(self, run_ids: Sequence[str]) -> list[MlflowRun]:
        """These runs whole: params, tags and every metric point."""

    def registered_models(self) -> list[MlflowRegisteredModel]:
        """Every registered model with its versions and aliases."""

    def logged_model_location(self, model_id: str) -> str | None:
        """Where MLflow 3 keeps the files of logged model ``model_id`` (a version's source
        ``models:/<model_id>``), or None when the store does not know it."""

    def list_artifacts(self, location: str) -> Iterator[ArtifactEntry]:
        """Every file below the artifact location ``location`` (a run's artifact URI or a
        model version's storage location), recursively."""

    def read_artifact(self, location: str, path: str) -> bytes:
        """The bytes of the file ``path`` below ``location``."""

    def close(self) -> None: ...

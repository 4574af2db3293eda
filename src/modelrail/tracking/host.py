"""What a run needs from the client that opened it, so the same ``ActiveRun`` logs into a
local store (``Client``) or a team server (``RemoteClient``).

``RunWriter`` is the part of the run repository a run writes through; ``RunHost`` the client
around it. ``begin_run`` opens a run on either.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from modelrail.entities import (
    ArtifactRecord,
    ComponentSpec,
    ComponentVersion,
    Experiment,
    MetricPoint,
    ModelVersion,
)
from modelrail.refs import validate_name

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.flavors.base import SaveOptions
    from modelrail.tracking.run import ActiveRun

__all__ = ["RunHost", "RunWriter", "begin_run"]


class RunWriter(Protocol):
    def get_or_create_experiment(self, name: str) -> Experiment: ...

    def create_run(
        self,
        *,
        run_id: str,
        experiment_id: int,
        name: str,
        architecture: str | None,
        user: str,
        started_at: float,
        provenance_json: str,
        tags: Mapping[str, str],
        components: Sequence[ComponentSpec] = (),
    ) -> dict[str, ComponentVersion]: ...

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def add_artifacts(self, run_id: str, records: Iterable[ArtifactRecord]) -> None: ...

    def attach_component(self, run_id: str, spec: ComponentSpec) -> ComponentVersion: ...

    def end_run(
        self,
        run_id: str,
        *,
        status: str,
        ended_at: float,
        error: str | None,
        components: Sequence[ComponentSpec] = (),
    ) -> None: ...


class RunHost(Protocol):
    @property
    def runs(self) -> RunWriter: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    def save_options(
        self, allow_pickle: bool | None, code_paths: Sequence[str | os.PathLike[str]]
    ) -> SaveOptions: ...

    def _register(
        self,
        model: Any,
        name: str,
        run_id: str | None,
        input_example: Any,
        description: str,
        options: SaveOptions,
    ) -> ModelVersion: ...


def begin_run(
    host: RunHost,
    *,
    project: str,
    user: str,
    experiment_ids: MutableMapping[str, int],
    experiment: str,
    architecture: str | None,
    name: str | None,
    tags: Mapping[str, str] | None,
) -> ActiveRun:
    """Record a new run (its code and environment captured now) and return it, open."""
    from modelrail.tracking.components import code_component, environment_component
    from modelrail.tracking.provenance import capture_provenance
    from modelrail.tracking.run import ActiveRun

    validate_name("experiment", experiment)
    experiment_id = experiment_ids.get(experiment)
    if experiment_id is None:
        experiment_id = host.runs.get_or_create_experiment(experiment).id
        experiment_ids[experiment] = experiment_id
    run_id = uuid.uuid4().hex
    provenance = capture_provenance()
    host.runs.create_run(
        run_id=run_id,
        experiment_id=experiment_id,
        name=name or f"{experiment}-{run_id[:8]}",
        architecture=architecture,
        user=user,
        started_at=time.time(),
        provenance_json=provenance.json_text,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        components=[
            code_component(experiment, architecture, provenance),
            environment_component(project),
        ],
    )
    return ActiveRun(host, run_id, experiment)

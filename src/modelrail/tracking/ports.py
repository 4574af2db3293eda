"""What a run needs from the client that opened it, so the same ``ActiveRun`` logs into a
local store (``Client``) or a team server (``RemoteClient``): ``RunWriter`` is the part of
the run repository a run writes through, ``RunHost`` the client around it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from modelrail.entities import (
    ArtifactRecord,
    ComponentSpec,
    ComponentVersion,
    Experiment,
    MetricPoint,
    ModelVersion,
)

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.flavors.base import SaveOptions
    from modelrail.monitoring.profiles import ReferenceProfile

__all__ = ["RunHost", "RunWriter"]


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

    def record_reference_profile(
        self, ref: str, profile: ReferenceProfile, *, actor: str | None = None
    ) -> None: ...

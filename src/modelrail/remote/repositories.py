"""The run and model repositories a run writes through, over a team server's HTTP API.

``RemoteRuns`` offers what ``tracking.host.RunWriter`` asks for, ``RemoteModels`` the
``create_version`` and ``set_forms`` that registration and ``models compile`` call, so
``registry.register_model`` and ``ActiveRun`` work unchanged against a server.

Every write is safe to retry, so every write is retried when an answer is lost: a run is
created under the id the client chose, parameters may be sent again with the same values,
tags, artifacts and components replace themselves, ending an ended run with the same status
changes nothing, a metrics batch sent again is marked as a retry (the server then skips the
points it holds already), and a registration carries a random key the server remembers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from modelrail.entities import (
    ArtifactRecord,
    ComponentSpec,
    ComponentVersion,
    Experiment,
    MetricPoint,
    ModelVersion,
    Signature,
)
from modelrail.remote.connection import ServerConnection, segment
from modelrail.remote.decode import decode
from modelrail.server.payload import to_json

__all__ = ["RemoteModels", "RemoteRuns"]


class RemoteRuns:
    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection

    def get_or_create_experiment(self, name: str) -> Experiment:
        found = self.connection.post("/experiments", {"name": name}, repeatable=True)
        return decode(Experiment, found, "experiment")

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
    ) -> dict[str, ComponentVersion]:
        """As the local repository; ``user`` is the server's signed-in user, whatever is given."""
        body = {
            "id": run_id,
            "experiment_id": experiment_id,
            "name": name,
            "architecture": architecture,
            "started_at": started_at,
            "provenance": provenance_json,
            "tags": dict(tags),
            "components": to_json(list(components)),
        }
        found = self.connection.post("/runs", body, repeatable=True)
        if not isinstance(found, dict):
            return {}
        return {
            role: decode(ComponentVersion, v, f"components.{role}") for role, v in found.items()
        }

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        self._write(run_id, "params", {"params": to_json(dict(params))})

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        body = {"points": to_json(list(points))}
        self.connection.post(f"/runs/{run_id}/metrics", body, repeatable=True, marks_retry=True)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._write(run_id, "tags", {"tags": dict(tags)})

    def add_artifacts(self, run_id: str, records: Iterable[ArtifactRecord]) -> None:
        self._write(run_id, "artifacts", {"artifacts": to_json(list(records))})

    def attach_component(self, run_id: str, spec: ComponentSpec) -> ComponentVersion:
        found = self._write(run_id, "components", {"component": to_json(spec)})
        return decode(ComponentVersion, found, "component")

    def end_run(
        self,
        run_id: str,
        *,
        status: str,
        ended_at: float,
        error: str | None,
        components: Sequence[ComponentSpec] = (),
    ) -> None:
        body = {
            "status": status,
            "ended_at": ended_at,
            "error": error,
            "components": to_json(list(components)),
        }
        self._write(run_id, "end", body)

    def _write(self, run_id: str, what: str, body: Mapping[str, Any]) -> Any:
        return self.connection.post(f"/runs/{run_id}/{what}", body, repeatable=True)


class RemoteModels:
    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection

    def create_version(
        self,
        *,
        name: str,
        run_id: str | None,
        flavor: str,
        artifact_sha256: str,
        artifact_size: int,
        signature: Signature,
        input_example: Any,
        flavor_details: Mapping[str, Any],
        description: str,
        created_by: str,
        forms: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> ModelVersion:
        """Register on the server (as its signed-in user); the artifact, and the forms'
        blobs, must be uploaded first."""
        body = {
            "key": key or uuid.uuid4().hex,
            "run_id": run_id,
            "flavor": flavor,
            "artifact_sha256": artifact_sha256,
            "artifact_size": artifact_size,
            "signature": signature.to_json(),
            "input_example": input_example,
            "flavor_details": dict(flavor_details),
            "description": description,
            "forms": None if forms is None else dict(forms),
        }
        found = self.connection.post(f"/models/{segment(name)}/versions", body, repeatable=True)
        return decode(ModelVersion, found, "version")

"""MLflow registered model versions as modelrail versions, and where MLflow's aliases and
legacy stages put them in modelrail's environments.

A version keeps MLflow's number, time, author and description; its model is saved again
through modelrail's flavor (``registry.register_model``: the same save, signature and
predictor forms as a version logged here), and ``flavor_details["mlflow"]`` says where it
came from, so a second import recognises it without converting it again.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelrail.artifacts import ArtifactStore
from modelrail.entities import ModelVersion, Signature
from modelrail.errors import InvalidInputError
from modelrail.portability.mlflow_models import ConvertedModel
from modelrail.portability.mlflow_records import MlflowModelVersion, MlflowRegisteredModel
from modelrail.portability.records import VersionRecord

# MLflow's legacy stages -> the environment they mean in the default chain.
DEFAULT_STAGES = {"Production": "prod", "Staging": "staging"}


def version_location(version: MlflowModelVersion, run_artifact_uri: str | None, source: Any) -> str:
    """Where the version's MLflow files are: its storage location (MLflow 2.x+), else the
    logged model (``models:/m-...``, MLflow 3), else a path in its run (``runs:/id/path``),
    else its source itself."""
    if version.storage_location:
        return version.storage_location
    parsed = urllib.parse.urlsplit(version.source)
    model_id = (parsed.netloc or parsed.path).strip("/")  # models:/m-... has no netloc
    if parsed.scheme == "models" and model_id.startswith("m-"):
        found = source.logged_model_location(model_id)
        if found:
            return str(found)
    if parsed.scheme == "runs":
        if not run_artifact_uri:
            raise InvalidInputError(f"its source {version.source} names a run not imported")
        return f"{run_artifact_uri.rstrip('/')}/{parsed.path.lstrip('/')}"
    return version.source


@dataclass
class _Captured:
    """What ``register_model`` would record, kept instead of written (``VersionRecorder``)."""

    fields: dict[str, Any] | None = None

    def create_version(self, **fields: Any) -> ModelVersion:
        self.fields = fields
        return ModelVersion(
            model=fields["name"],
            version=0,
            run_id=fields["run_id"],
            flavor=fields["flavor"],
            artifact_sha256=fields["artifact_sha256"],
            artifact_size=fields["artifact_size"],
            signature=fields["signature"],
            input_example=fields["input_example"],
            flavor_details=fields["flavor_details"],
            created_at=0.0,
            created_by=fields["created_by"],
            description=fields["description"],
        )


def version_record(
    artifacts: ArtifactStore,
    converted: ConvertedModel,
    version: MlflowModelVersion,
    *,
    name: str,
    run_id: str | None,
    created_by: str,
    origin: Mapping[str, Any],
    model_created_ms: int | None,
) -> VersionRecord:
    """Save the model through its modelrail flavor (files into ``artifacts``) and describe
    the version that keeps MLflow's number, time, author and description."""
    from modelrail.registry import register_model

    captured = _Captured()
    register_model(
        captured,
        artifacts,
        converted.model,
        name=name,
        run_id=run_id,
        input_example=converted.input_example,
        created_by=created_by,
        description=version.description,
    )
    fields = captured.fields
    assert fields is not None
    signature: Signature = fields["signature"]
    created = (version.created_ms or 0) / 1000.0
    return VersionRecord(
        model=name,
        model_created_at=None if model_created_ms is None else model_created_ms / 1000.0,
        version=version.version,
        run_id=run_id,
        flavor=fields["flavor"],
        artifact_sha256=fields["artifact_sha256"],
        artifact_size=fields["artifact_size"],
        signature=signature.to_json(),
        input_example=fields["input_example"],
        flavor_details={**fields["flavor_details"], "mlflow": dict(origin)},
        created_at=created,
        created_by=created_by,
        description=version.description,
        forms=fields["forms"],
    )


@dataclass(frozen=True)
class Placement:
    """``environment`` should hold ``version`` of ``model``, because of ``because``."""

    model: str
    environment: str
    version: int
    because: str


def placements(
    model: MlflowRegisteredModel,
    name: str,
    imported: set[int],
    chain: Sequence[str],
    mapping: Mapping[str, str],
) -> tuple[list[Placement], list[str]]:
    """Where the model's aliases and stages put its imported versions, and what is left
    out and why. ``mapping`` (alias or stage -> environment) comes first; then a legacy
    stage by ``DEFAULT_STAGES``, an alias by its own name when an environment has it. An
    alias outranks a stage for the same environment; among equals the newest version wins."""
    wanted: dict[str, tuple[int, int, str]] = {}  # environment -> (rank, version, because)
    left_out: list[str] = []

    def offer(label: str, kind: str, version: int, rank: int) -> None:
        environment = mapping.get(label)
        if environment is None and kind == "stage":
            environment = DEFAULT_STAGES.get(label)
        if environment is None and kind == "alias" and label in chain:
            environment = label
        if environment is None or environment not in chain:
            if label != "Archived":
                left_out.append(f"{kind} {label!r} of {name}:{version} names no environment")
            return
        if version not in imported:
            left_out.append(f"{kind} {label!r} of {name}:{version}: the version was not imported")
            return
        candidate = (rank, version, f"MLflow {kind} {label}")
        if environment not in wanted or candidate[:2] > wanted[environment][:2]:
            wanted[environment] = candidate

    for v in model.versions:
        if v.stage:
            offer(v.stage, "stage", v.version, 0)
    for alias, number in sorted(model.aliases.items()):
        offer(alias, "alias", number, 1)
    found = [
        Placement(name, env, version, because) for env, (_, version, because) in wanted.items()
    ]
    return sorted(found, key=lambda p: chain.index(p.environment)), left_out

"""A serving bundle: the verified artifacts of some model versions plus a manifest of
their registry records, so a server (in a container, say) needs no store to run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelrail.artifacts import ArtifactStore
from modelrail.entities import ModelVersion, Signature
from modelrail.errors import InvalidInputError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BundledModel:
    version: ModelVersion
    environment: str | None


def write_bundle(artifacts: ArtifactStore, models: list[BundledModel], dest: Path) -> Path:
    """Copy each version's artifact (verified on the way) and write the manifest."""
    target = ArtifactStore(dest / "artifacts")
    entries = []
    for item in models:
        version = item.version
        source = artifacts.verified_path(
            version.artifact_sha256, size=version.artifact_size, label=version.reference
        )
        path = target.path_for(version.artifact_sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
        entries.append({"environment": item.environment, "version": _version_json(version)})
    (dest / MANIFEST).write_text(json.dumps({"models": entries}, indent=2), encoding="utf-8")
    return dest


def read_bundle(folder: Path) -> tuple[ArtifactStore, list[BundledModel]]:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise InvalidInputError(f"{folder} is not a serving bundle: {MANIFEST} is missing")
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
        models = [
            BundledModel(_version_from(entry["version"]), entry.get("environment"))
            for entry in document["models"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{manifest} is damaged: {exc}") from exc
    return ArtifactStore(folder / "artifacts"), models


def _version_json(version: ModelVersion) -> dict[str, Any]:
    return {
        "model": version.model,
        "version": version.version,
        "run_id": version.run_id,
        "flavor": version.flavor,
        "artifact_sha256": version.artifact_sha256,
        "artifact_size": version.artifact_size,
        "signature": version.signature.to_json(),
        "input_example": version.input_example,
        "flavor_details": dict(version.flavor_details),
        "created_at": version.created_at,
        "created_by": version.created_by,
        "description": version.description,
    }


def _version_from(data: dict[str, Any]) -> ModelVersion:
    return ModelVersion(**{**data, "signature": Signature.from_json(data["signature"])})

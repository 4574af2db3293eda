"""A serving bundle: the verified artifacts of some model versions plus a manifest of
their registry records, so a server (in a container, say) needs no store to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from modelrail.artifacts import ArtifactStore
from modelrail.entities import ModelVersion, Signature
from modelrail.errors import InvalidInputError
from modelrail.policy_monitoring import MonitoringPolicy, parse_monitoring
from modelrail.scoring.forms.record import stored_blobs

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BundledModel:
    version: ModelVersion
    environment: str | None
    # The environment's monitoring policy when the bundle was written: what a server of
    # the bundle logs and keeps out of its log.
    monitoring: MonitoringPolicy | None = None


def write_bundle(artifacts: ArtifactStore, models: list[BundledModel], dest: Path) -> Path:
    """Copy each version's artifact and its stored predictor forms (all verified on the
    way), and write the manifest."""
    target = ArtifactStore(dest / "artifacts")
    entries = []
    for item in models:
        version = item.version
        _copy(artifacts, target, version.artifact_sha256, version.artifact_size, version)
        for sha256, size, _ in stored_blobs(version):
            _copy(artifacts, target, sha256, size, version)
        entry = {"environment": item.environment, "version": _version_json(version)}
        if item.monitoring is not None:
            entry["monitoring"] = item.monitoring.to_document()
        entries.append(entry)
    (dest / MANIFEST).write_text(json.dumps({"models": entries}, indent=2), encoding="utf-8")
    return dest


def read_bundle(folder: Path) -> tuple[ArtifactStore, list[BundledModel]]:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise InvalidInputError(f"{folder} is not a serving bundle: {MANIFEST} is missing")
    try:
        document = json.loads(manifest.read_text(encoding="utf-8"))
        models = [
            BundledModel(
                _version_from(entry["version"]),
                entry.get("environment"),
                _monitoring(manifest, entry.get("monitoring")),
            )
            for entry in document["models"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{manifest} is damaged: {exc}") from exc
    store = ArtifactStore(folder / "artifacts")
    return store, [_without_absent_compiled_form(store, item) for item in models]


def _monitoring(manifest: Path, value: Any) -> MonitoringPolicy | None:
    if value is None:
        return None

    def fail(key: str, problem: str) -> NoReturn:
        raise InvalidInputError(f"{manifest} is damaged: {problem}")

    return parse_monitoring("monitoring", value, fail)


def _copy(
    source: ArtifactStore, target: ArtifactStore, sha256: str, size: int, version: ModelVersion
) -> None:
    source.copy_verified(sha256, target.path_for(sha256), size=size, label=version.reference)


def _without_absent_compiled_form(store: ArtifactStore, item: BundledModel) -> BundledModel:
    """Bundles written before forms were bundled hold the model alone: it is then served
    from the model (compiled again when loaded), as those bundles always were."""
    blobs = stored_blobs(item.version)
    if all(store.path_for(sha256).is_file() for sha256, _, _ in blobs):
        return item
    details = {k: v for k, v in item.version.flavor_details.items() if k != "compiled"}
    return replace(item, version=replace(item.version, flavor_details=details, forms=None))


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
        "forms": None if version.forms is None else dict(version.forms),
    }


def _version_from(data: dict[str, Any]) -> ModelVersion:
    return ModelVersion(**{**data, "signature": Signature.from_json(data["signature"])})

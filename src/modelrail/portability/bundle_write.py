"""``modelrail export``: versions, their runs, history and files into one bundle file.

The exporter reads through ``ExportSource``, the methods ``Client`` offers locally and
``RemoteClient`` offers through a team server, so a bundle can be written from either.
Every file goes into the bundle in chunks, checked against its sha256 on the way (a file
changed in the artifact store stops the export), and the bundle is written to a temporary
file beside the destination and renamed into place: the destination is whole or absent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from modelrail.artifacts import ArtifactStore
from modelrail.entities import EnvironmentEvent, Experiment, MetricPoint, Model, ModelVersion, Run
from modelrail.errors import ArtifactIntegrityError, InvalidInputError
from modelrail.monitoring.profiles import ReferenceProfile
from modelrail.portability import bundle_format as fmt
from modelrail.portability.ingest import form_blobs
from modelrail.portability.records import (
    JSON,
    ComponentRecord,
    HistoryRecord,
    RunRecord,
    VersionRecord,
)
from modelrail.refs import Ref
from modelrail.store.codec import dumps

_CHUNK = 1 << 20
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # members carry no time: the manifest has the export's


class ExportSource(Protocol):
    """What an export reads: a local ``Client`` or a team server's ``RemoteClient``."""

    @property
    def user(self) -> str: ...

    @property
    def store_address(self) -> str: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    def store_id(self) -> str: ...

    def list_models(self) -> list[Model]: ...

    def list_versions(self, name: str) -> list[ModelVersion]: ...

    def get_model_version(self, reference: str | Ref) -> ModelVersion: ...

    def get_run(self, run_id: str) -> Run: ...

    def reference_profile(self, ref: str) -> ReferenceProfile | None: ...

    def metric_history(self, run_id: str, key: str | None = None) -> list[MetricPoint]: ...

    def experiments(self) -> list[Experiment]: ...

    def history(
        self, model: str | None = None, environment: str | None = None
    ) -> list[EnvironmentEvent]: ...

    def imported_history(self, model: str | None = None) -> list[HistoryRecord]: ...


class Progress(Protocol):
    """Told how many bytes a step will move, then as they move (a progress bar)."""

    def begin(self, what: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    versions: tuple[str, ...]
    runs: int
    events: int
    files: int
    size: int


def export_bundle(
    source: ExportSource,
    references: Sequence[str],
    output: str | os.PathLike[str],
    *,
    everything: bool = False,
    progress: Progress | None = None,
    modelrail_version: str = "",
) -> ExportSummary:
    """Write the versions named by ``references`` (``churn:7``, ``churn@prod``, or
    ``churn`` for every version of it; ``everything`` for the whole store) with their runs,
    history and files into the bundle file ``output``."""
    target = Path(output)
    if not target.parent.is_dir():
        raise InvalidInputError(
            f"{{output}} {target}: folder {target.parent} does not exist",
            params=("output",),
        )
    versions = select_versions(source, references, everything)
    experiments = {e.name: e.created_at for e in source.experiments()}
    runs = [
        run_record(source.get_run(run_id), source.metric_history(run_id), experiments)
        for run_id in dict.fromkeys(v.run_id for v in versions if v.run_id is not None)
    ]
    history = history_records(source, versions)
    blobs = _blobs(versions, runs)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w+b") as raw:
            writer = _Writer(raw)
            try:
                manifest = _write(writer, source, versions, runs, history, blobs, progress)
                writer.close(manifest, modelrail_version)
            except BaseException:
                writer.abandon()
                raise
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return ExportSummary(
        path=target,
        versions=manifest.versions,
        runs=len(runs),
        events=len(history),
        files=len(blobs),
        size=target.stat().st_size,
    )


def _write(
    writer: _Writer,
    source: ExportSource,
    versions: Sequence[ModelVersion],
    runs: Sequence[RunRecord],
    history: Sequence[HistoryRecord],
    blobs: Sequence[tuple[str, int, str]],
    progress: Progress | None,
) -> fmt.Manifest:
    """Every member but the manifest, which is returned."""
    models = {m.name: m.created_at for m in source.list_models()}
    for run in runs:
        writer.record(fmt.run_member(run.id), run.to_json())
    for version in versions:
        profile = source.reference_profile(version.reference)
        record = version_record(version, models, None if profile is None else profile.to_json())
        writer.record(fmt.version_member(version.model, version.version), record.to_json())
    writer.record(fmt.HISTORY, [event.to_json() for event in history])
    if progress is not None:
        progress.begin("export", sum(size for _, size, _ in blobs))
    for sha256, size, label in blobs:
        writer.blob(source.artifacts, sha256, size, label, progress)
    return fmt.Manifest(
        format_version=fmt.FORMAT_VERSION,
        modelrail_version="",
        created_at=time.time(),
        created_by=source.user,
        source_store=source.store_address,
        source_id=source.store_id(),
        versions=tuple(v.reference for v in versions),
        runs=len(runs),
        events=len(history),
        members=writer.members,
    )


def select_versions(
    source: ExportSource, references: Sequence[str], everything: bool
) -> list[ModelVersion]:
    if everything:
        chosen = [v for m in source.list_models() for v in source.list_versions(m.name)]
    elif not references:
        raise InvalidInputError(
            "name what to export: a version (churn:7), a model (churn) or {everything}",
            params=("everything",),
        )
    else:
        chosen = []
        for text in references:
            ref = Ref.parse(text)
            if ref.version is None and ref.environment is None:
                chosen.extend(source.list_versions(ref.name))
            else:
                chosen.append(source.get_model_version(ref))
    unique = {(v.model, v.version): v for v in chosen}
    return [unique[key] for key in sorted(unique)]


def run_record(run: Run, points: Iterable[MetricPoint], experiments: dict[str, float]) -> RunRecord:
    return RunRecord(
        id=run.id,
        experiment=run.experiment,
        experiment_created_at=experiments.get(run.experiment),
        name=run.name,
        status=run.status,
        architecture=run.architecture,
        user=run.user,
        started_at=run.started_at,
        ended_at=run.ended_at,
        error=run.error,
        provenance=run.provenance,
        params=run.params,
        tags=run.tags,
        metrics=tuple(points),
        components=tuple(
            ComponentRecord(
                role=role,
                kind=c.kind,
                lineage=c.lineage,
                fingerprint=c.fingerprint,
                shape_fingerprint=c.shape_fingerprint,
                details=c.details,
                major=c.major,
                minor=c.minor,
                created_at=c.created_at,
            )
            for role, c in sorted(run.components.items())
        ),
        artifacts=run.artifacts,
    )


def version_record(
    version: ModelVersion,
    models: dict[str, float],
    reference_profile: Mapping[str, JSON] | None = None,
) -> VersionRecord:
    return VersionRecord(
        model=version.model,
        model_created_at=models.get(version.model),
        version=version.version,
        run_id=version.run_id,
        flavor=version.flavor,
        artifact_sha256=version.artifact_sha256,
        artifact_size=version.artifact_size,
        signature=version.signature.to_json(),
        input_example=version.input_example,
        flavor_details=version.flavor_details,
        created_at=version.created_at,
        created_by=version.created_by,
        description=version.description,
        forms=version.forms,
        reference_profile=reference_profile,
    )


def history_records(source: ExportSource, versions: Sequence[ModelVersion]) -> list[HistoryRecord]:
    """This store's events that put a bundled version in or out of an environment, then the
    history it imported of them from other stores."""
    origin = f"modelrail:{source.store_id()}"
    numbers: dict[str, set[int]] = {}
    for version in versions:
        numbers.setdefault(version.model, set()).add(version.version)
    found: list[HistoryRecord] = []
    for model, held in sorted(numbers.items()):
        for event in source.history(model):
            if {event.from_version, event.to_version} & held:
                found.append(_history_record(origin, event))
        for imported in source.imported_history(model):
            if {imported.from_version, imported.to_version} & held:
                found.append(imported)
    return found


def _history_record(origin: str, event: EnvironmentEvent) -> HistoryRecord:
    return HistoryRecord(
        origin=origin,
        origin_id=event.id,
        model=event.model,
        environment=event.environment,
        action=event.action,
        from_version=event.from_version,
        to_version=event.to_version,
        actor=event.actor,
        reason=event.reason,
        created_at=event.created_at,
        gates=tuple(g.to_json() for g in event.gates),
        forced=event.forced,
        request_id=event.request_id,
        policy_version=event.policy_version,
    )


def _blobs(
    versions: Sequence[ModelVersion], runs: Sequence[RunRecord]
) -> list[tuple[str, int, str]]:
    """(sha256, size, what) of every file the records name, each once."""
    found: dict[str, tuple[str, int, str]] = {}
    for version in versions:
        named = [(version.artifact_sha256, version.artifact_size), *form_blobs(version)]
        for sha256, size in named:
            found.setdefault(sha256, (sha256, size, version.reference))
    for run in runs:
        for artifact in run.artifacts:
            found.setdefault(
                artifact.sha256,
                (artifact.sha256, artifact.size, f"run {run.short_id}: {artifact.path}"),
            )
    return list(found.values())


class _Writer:
    """Members into the zip, each hashed as it is written for the manifest."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.zip = zipfile.ZipFile(raw, "w", allowZip64=True)
        self.members: dict[str, fmt.Member] = {}

    def record(self, name: str, data: object) -> None:
        content = dumps(data).encode()
        info = zipfile.ZipInfo(name, _ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, content)
        self.members[name] = fmt.Member(hashlib.sha256(content).hexdigest(), len(content))

    def blob(
        self,
        artifacts: ArtifactStore,
        sha256: str,
        size: int,
        label: str,
        progress: Progress | None,
    ) -> None:
        handle = artifacts.open_verified(sha256, label=label)
        if handle is None:
            raise ArtifactIntegrityError(
                f"{label}: its file {sha256[:12]}... is missing from the artifact store "
                f"{artifacts.location}; nothing was exported"
            )
        info = zipfile.ZipInfo(fmt.blob_member(sha256), _ZIP_TIME)
        digest, written = hashlib.sha256(), 0
        with handle, self.zip.open(info, "w", force_zip64=True) as out:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress.advance(len(chunk))
        # Read once to check and once to copy: a file changed in between is caught here.
        if digest.hexdigest() != sha256 or written != size:
            raise ArtifactIntegrityError(
                f"{label}: its file {sha256[:12]}... changed while it was exported "
                f"({written:,} bytes, {size:,} recorded); nothing was exported"
            )
        self.members[info.filename] = fmt.Member(sha256, written)

    def abandon(self) -> None:
        """Close the archive of a failed export (its file is deleted) without raising:
        the export's own error is the one to tell."""
        with contextlib.suppress(Exception):
            self.zip.close()

    def close(self, manifest: fmt.Manifest, modelrail_version: str) -> None:
        info = zipfile.ZipInfo(fmt.MANIFEST, _ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        manifest = dataclasses.replace(manifest, modelrail_version=modelrail_version)
        self.zip.writestr(info, dumps(manifest.to_json()).encode())
        self.zip.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())

"""Writing records from elsewhere into a store: the one way imports add runs and versions.

``ingest`` takes plain records (``portability.records``) and writes them with their
original run ids, version numbers, component labels, times and authors, through
``store.import_repo`` in ONE transaction:

* **Idempotent.** A run or version already here with the same content is left alone; a
  second ingest of the same records changes nothing (``IngestReport.changed`` is False and
  no import is recorded).
* **Conflict-checked.** A run id or a model version number already here with different
  content raises ``ImportConflictError`` naming it and what differs; the transaction rolls
  back, so nothing of the batch is written. The forms record of a version (rebuilt by
  ``models compile``) and component labels (each store labels content by its own history)
  are not content. Records may be streamed (iterables): a conflict found late still undoes
  everything written before it.
* **Honest history.** Each version added gets an ``imported`` event in this store's history
  (who imported it, from which source and store, when), placing it in no environment.
  The source store's own promotions are kept as the version's *imported history*
  (``HistoryRecord``, shown apart from this store's history), never as events here: they
  passed another store's gates.
* **Labels.** A component keeps its source label when that label is free here and fits the
  lineage (one major per shape); otherwise it gets this store's own label, and the report
  lists it (``relabelled``). Content already here keeps the label it has.

Artifacts are not written here: store the model files, forms and run artifacts in the
artifact store first (they are content-addressed, so that is harmless), and pass
``has_blob`` to have every referenced one checked before anything is written.

Use it from an importer::

    report = ingest(ImportRepository(db), runs=runs, versions=versions, history=events,
                    source=ImportSource("mlflow", url, url), actor=user, has_blob=present)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelrail.entities import RUN_STATUSES, ModelVersion
from modelrail.errors import ImportConflictError, InvalidInputError, MonitoringDataError
from modelrail.monitoring.profiles import ReferenceProfile
from modelrail.portability.records import HistoryRecord, ImportSource, RunRecord, VersionRecord
from modelrail.refs import MAX_VERSION, validate_name
from modelrail.store.codec import dumps
from modelrail.store.import_repo import ImportRepository, ImportWriter, Relabel

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: records added, records found already here (identical), source
    history events kept, components relabelled, and the import's id (None: nothing changed)."""

    runs_added: tuple[str, ...] = ()
    runs_present: tuple[str, ...] = ()
    versions_added: tuple[str, ...] = ()
    versions_present: tuple[str, ...] = ()
    events_added: int = 0
    relabelled: tuple[Relabel, ...] = ()
    import_id: int | None = None

    @property
    def changed(self) -> bool:
        return bool(self.runs_added or self.versions_added or self.events_added)

    def summary(self) -> dict[str, Any]:
        return {
            "runs_added": list(self.runs_added),
            "runs_present": len(self.runs_present),
            "versions_added": list(self.versions_added),
            "versions_present": list(self.versions_present),
            "events_added": self.events_added,
            "relabelled": [
                {
                    "run": r.run_id,
                    "role": r.role,
                    "lineage": r.lineage,
                    "source_label": r.source_label,
                    "label": r.label,
                }
                for r in self.relabelled
            ],
        }


@dataclass
class _Tally:
    runs_added: list[str] = field(default_factory=list)
    runs_present: list[str] = field(default_factory=list)
    versions_added: list[str] = field(default_factory=list)
    versions_present: list[str] = field(default_factory=list)
    relabelled: list[Relabel] = field(default_factory=list)


BlobCheck = Callable[[str, int], bool]


def ingest(
    repo: ImportRepository,
    *,
    runs: Iterable[RunRecord],
    versions: Iterable[VersionRecord],
    history: Iterable[HistoryRecord] = (),
    source: ImportSource,
    actor: str,
    has_blob: BlobCheck | None = None,
    on_record: Callable[[], None] | None = None,
    now: float | None = None,
) -> IngestReport:
    """Write ``runs``, then ``versions`` (each version's run among ``runs`` or already
    here), then the source's ``history`` of those versions, in one transaction; see the
    module's docstring. ``on_record`` is called after each run or version (progress)."""
    at = time.time() if now is None else now
    tally = _Tally()
    with repo.transaction() as writer:
        for run in runs:
            _ingest_run(writer, run, tally, has_blob)
            if on_record is not None:
                on_record()
        known_runs = {*tally.runs_added, *tally.runs_present}
        for version in versions:
            _ingest_version(writer, version, known_runs, tally, has_blob)
            if on_record is not None:
                on_record()
        events = _new_events(writer, history)
        report = IngestReport(
            runs_added=tuple(tally.runs_added),
            runs_present=tuple(tally.runs_present),
            versions_added=tuple(tally.versions_added),
            versions_present=tuple(tally.versions_present),
            events_added=len(events),
            relabelled=tuple(tally.relabelled),
        )
        if not report.changed:
            return report
        import_id = writer.add_import(source, actor=actor, at=at, summary=report.summary())
        writer.add_imported_events(import_id, events)
        reason = f"imported from {source.describe()}"
        for reference in tally.versions_added:
            model, _, number = reference.rpartition(":")
            writer.mark_imported(model, int(number), actor=actor, reason=reason, at=at)
    return IngestReport(**{**report.__dict__, "import_id": import_id})


def ingest_runs(
    repo: ImportRepository,
    runs: Sequence[RunRecord],
    *,
    source: ImportSource,
    actor: str,
    has_blob: BlobCheck | None = None,
    now: float | None = None,
) -> IngestReport:
    """``ingest`` for a batch of runs alone, written with one statement per table (an
    importer of 10,000s of runs, such as the MLflow import, calls it per batch). The same
    checks and the same outcome: runs already here compared (a difference refused with
    ``ImportConflictError``, nothing of the batch written), one import recorded when
    anything was added."""
    at = time.time() if now is None else now
    tally = _Tally()
    with repo.transaction() as writer:
        present = writer.present_runs([run.id for run in runs])
        fresh = []
        for run in runs:
            if run.id in present:
                _ingest_run(writer, run, tally, has_blob)
                continue
            _check_run(run)
            for artifact in run.artifacts:
                what = f"run {run.short_id}: {artifact.path}"
                _require_blob(has_blob, artifact.sha256, artifact.size, what)
            fresh.append(run)
        tally.relabelled.extend(writer.add_new_runs(fresh))
        tally.runs_added.extend(run.id for run in fresh)
        report = IngestReport(
            runs_added=tuple(tally.runs_added),
            runs_present=tuple(tally.runs_present),
            relabelled=tuple(tally.relabelled),
        )
        if not report.changed:
            return report
        import_id = writer.add_import(source, actor=actor, at=at, summary=report.summary())
    return IngestReport(**{**report.__dict__, "import_id": import_id})


def _ingest_run(
    writer: ImportWriter, run: RunRecord, tally: _Tally, has_blob: BlobCheck | None
) -> None:
    _check_run(run)
    existing = writer.run(run.id)
    if existing is not None:
        differing = run_differences(existing, run)
        if differing:
            raise ImportConflictError(
                f"run {run.id} is already in this store with different "
                f"{', '.join(differing)}; nothing was imported"
            )
        tally.runs_present.append(run.id)
        return
    for artifact in run.artifacts:
        _require_blob(
            has_blob, artifact.sha256, artifact.size, f"run {run.short_id}: {artifact.path}"
        )
    tally.relabelled.extend(writer.add_run(run))
    tally.runs_added.append(run.id)


def _ingest_version(
    writer: ImportWriter,
    version: VersionRecord,
    known_runs: set[str],
    tally: _Tally,
    has_blob: BlobCheck | None,
) -> None:
    _check_version(version)
    existing = writer.version(version.model, version.version)
    if existing is not None:
        differing = version_differences(existing, version)
        if differing:
            raise ImportConflictError(
                f"model {version.model!r} already has a version {version.version} in this "
                f"store with different {', '.join(differing)}; nothing was imported"
            )
        tally.versions_present.append(version.reference)
        return
    run_id = version.run_id
    if run_id is not None and run_id not in known_runs and not writer.has_run(run_id):
        raise InvalidInputError(
            f"{version.reference}: its run {version.run_id} is neither among the records "
            "to import nor in this store; nothing was imported"
        )
    _require_blob(has_blob, version.artifact_sha256, version.artifact_size, version.reference)
    for sha256, size in form_blobs(version):
        _require_blob(has_blob, sha256, size, f"{version.reference} (predictor form)")
    writer.add_version(version)
    tally.versions_added.append(version.reference)


def _new_events(writer: ImportWriter, history: Iterable[HistoryRecord]) -> list[HistoryRecord]:
    known: dict[str, set[int]] = {}
    fresh: dict[tuple[str, int], HistoryRecord] = {}
    for event in history:
        if event.origin not in known:
            known[event.origin] = writer.known_events(event.origin)
        if event.origin_id in known[event.origin]:
            continue
        if writer.model_id(event.model) is None:
            raise InvalidInputError(
                f"history event {event.origin_id} of {event.origin} is about model "
                f"{event.model!r}, which is neither among the records nor in this store"
            )
        fresh[(event.origin, event.origin_id)] = event
    return list(fresh.values())


# -- what counts as the same record ------------------------------------------------------


def run_differences(stored: RunRecord, incoming: RunRecord) -> list[str]:
    """The fields in which two records of one run differ (component labels and times are
    each store's own and do not count)."""
    fields: dict[str, Callable[[RunRecord], object]] = {
        "experiment": lambda r: r.experiment,
        "name": lambda r: r.name,
        "status": lambda r: r.status,
        "architecture": lambda r: r.architecture,
        "user": lambda r: r.user,
        "start time": lambda r: r.started_at,
        "end time": lambda r: r.ended_at,
        "error": lambda r: r.error,
        "provenance": lambda r: dumps(dict(r.provenance)),
        "params": lambda r: dumps(dict(r.params)),
        "tags": lambda r: dict(r.tags),
        "metrics": lambda r: sorted((p.key, p.step, p.timestamp, p.value) for p in r.metrics),
        "components": lambda r: sorted(
            (c.role, c.kind, c.lineage, c.fingerprint, c.shape_fingerprint) for c in r.components
        ),
        "artifacts": lambda r: sorted((a.path, a.sha256, a.size) for a in r.artifacts),
    }
    return [name for name, get in fields.items() if get(stored) != get(incoming)]


def version_differences(stored: VersionRecord, incoming: VersionRecord) -> list[str]:
    """The fields in which two records of one version differ (its predictor forms are
    rebuilt by ``models compile`` and do not count)."""
    fields: dict[str, Callable[[VersionRecord], object]] = {
        "run": lambda v: v.run_id,
        "flavor": lambda v: v.flavor,
        "model file": lambda v: (v.artifact_sha256, v.artifact_size),
        "signature": lambda v: dumps(dict(v.signature)),
        "input example": lambda v: dumps(v.input_example),
        "flavor details": lambda v: dumps(dict(v.flavor_details)),
        "description": lambda v: v.description,
        "creation time": lambda v: v.created_at,
        "author": lambda v: v.created_by,
    }
    return [name for name, get in fields.items() if get(stored) != get(incoming)]


def form_blobs(version: VersionRecord | ModelVersion) -> list[tuple[str, int]]:
    """(sha256, size) of every stored predictor form a version names."""
    from modelrail.scoring.forms.record import stored_blobs

    try:
        return [(sha256, size) for sha256, size, _ in stored_blobs(version)]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(
            f"{version.reference}: its predictor forms record is malformed ({exc})"
        ) from exc


# -- checks on records from outside ------------------------------------------------------


def _check_run(run: RunRecord) -> None:
    what = f"run {run.id!r}"
    if not _RUN_ID.match(run.id):
        raise InvalidInputError(f"{what}: a run id is 32 lowercase hexadecimal characters")
    validate_name("experiment", run.experiment)
    if run.status not in RUN_STATUSES:
        raise InvalidInputError(
            f"{what}: status {run.status!r} is not one of {', '.join(RUN_STATUSES)}"
        )
    for artifact in run.artifacts:
        _check_sha256(artifact.sha256, f"{what}: artifact {artifact.path!r}")
    roles = [c.role for c in run.components]
    if len(set(roles)) != len(roles):
        raise InvalidInputError(f"{what}: a component role appears twice")


def _check_version(version: VersionRecord) -> None:
    validate_name("model", version.model)
    if not 1 <= version.version <= MAX_VERSION:
        raise InvalidInputError(
            f"{version.model}: version {version.version} is not between 1 and {MAX_VERSION}"
        )
    _check_sha256(version.artifact_sha256, f"{version.reference}: model file")
    if version.run_id is not None and not _RUN_ID.match(version.run_id):
        raise InvalidInputError(f"{version.reference}: run id {version.run_id!r} is malformed")
    if version.reference_profile is not None:
        try:
            ReferenceProfile.from_json(
                version.reference_profile, f"{version.reference}: reference profile"
            )
        except MonitoringDataError as exc:
            raise InvalidInputError(exc.message) from exc


def _check_sha256(value: str, what: str) -> None:
    if not _SHA256.match(value):
        raise InvalidInputError(f"{what}: sha256 {value!r} is not 64 hexadecimal characters")


def _require_blob(has_blob: BlobCheck | None, sha256: str, size: int, what: str) -> None:
    if has_blob is not None and not has_blob(sha256, size):
        raise InvalidInputError(
            f"{what}: its file {sha256[:12]}... ({size:,} bytes) is not in this store's "
            "artifact store; store the artifacts before the records. Nothing was imported"
        )

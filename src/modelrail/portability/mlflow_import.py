"""``modelrail import-mlflow``: an MLflow tracking store's history brought into this store.

The import reads the source (``mlflow_sql``, ``mlflow_files``, ``mlflow_rest``) and writes
through ``portability.ingest``, the one way records from elsewhere enter a store:

1. Runs, in batches (``batch_size``), each batch one transaction: its artifacts are stored
   content-addressed first, then the batch's runs with every param, tag and metric point
   and the model files of their registered versions. Runs already here (by MLflow's run id,
   which a run keeps) are not read again, so an import that was stopped continues where it
   stopped, and a second import changes nothing.
2. Registered versions, one transaction each: converted when that is safe
   (``mlflow_models``), else left as files with the reason.
3. MLflow's aliases and legacy stages, placed in the environments they name
   (``mlflow_versions.placements``) with an ``import`` event in the history, where the
   environment holds nothing of that model yet.

Whatever is left out is named in the summary with the reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from modelrail.artifacts import ArtifactStore
from modelrail.entities import ArtifactRecord
from modelrail.errors import (
    ImportConflictError,
    InvalidInputError,
    ModelFlavorError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
)
from modelrail.portability.ingest import ingest, ingest_runs
from modelrail.portability.mlflow_artifacts import ArtifactsUnreachable
from modelrail.portability.mlflow_models import NotConverted, convert
from modelrail.portability.mlflow_records import (
    MlflowExperiment,
    MlflowModelVersion,
    MlflowRegisteredModel,
    MlflowRun,
    MlflowSource,
)
from modelrail.portability.mlflow_runs import modelrail_name, run_record
from modelrail.portability.mlflow_versions import placements, version_location, version_record
from modelrail.portability.records import ImportSource, RunRecord
from modelrail.store.db import Database
from modelrail.store.environments_repo import EnvironmentRepository
from modelrail.store.import_repo import ImportRepository
from modelrail.store.mlflow_repo import present_run_ids
from modelrail.store.models_repo import ModelRepository

# Called as (phase, done so far, total) while the import works: "runs", "models".
Progress = Callable[[str, int, int], None]
MODEL_FILES = "mlflow-models"


@dataclass(frozen=True)
class Skipped:
    what: str
    reason: str


@dataclass
class MlflowImportSummary:
    source: str
    experiments: int = 0
    runs_imported: int = 0
    runs_present: int = 0
    metric_points: int = 0
    artifacts: int = 0
    versions_imported: list[str] = field(default_factory=list)
    versions_present: list[str] = field(default_factory=list)
    placed: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.runs_imported or self.versions_imported or self.placed)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MlflowImporter:
    source: MlflowSource
    db: Database
    artifacts: ArtifactStore
    actor: str
    store: str  # this store, as the import record names it
    chain: Sequence[str]
    trust_pickles: bool = False
    environments: Mapping[str, str] = field(default_factory=dict)
    batch_size: int = 500
    progress: Progress | None = None

    def __post_init__(self) -> None:
        for label, environment in self.environments.items():
            if environment not in self.chain:
                raise InvalidInputError(
                    f"{{environments}} maps {label!r} to {environment!r}, which is not an "
                    f"environment here (the chain is {' -> '.join(self.chain)})",
                    params=("environments",),
                )
        self.summary = MlflowImportSummary(source=self.source.description)
        self._origin = ImportSource("mlflow", self.source.description, self.store)
        self._imports = ImportRepository(self.db)

    def run(self) -> MlflowImportSummary:
        experiments = {e.id: e for e in self.source.experiments()}
        self.summary.experiments = sum(not e.deleted for e in experiments.values())
        registry = self.source.registered_models()
        by_run: dict[str, list[MlflowModelVersion]] = {}
        for model in registry:
            for version in model.versions:
                if version.run_id:
                    by_run.setdefault(version.run_id, []).append(version)
        self._import_runs(experiments, by_run)
        for model in registry:
            self._import_model(model)
        return self.summary

    # -- runs -------------------------------------------------------------------------------

    def _import_runs(
        self, experiments: Mapping[str, MlflowExperiment], by_run: Mapping[str, list[Any]]
    ) -> None:
        wanted = []
        for key in self.source.run_keys():
            experiment = experiments.get(key.experiment_id)
            if key.deleted or experiment is None or experiment.deleted:
                why = "deleted in MLflow" if key.deleted else "its experiment is deleted"
                self.summary.skipped.append(Skipped(f"run {key.run_id}", why))
                continue
            wanted.append(key.run_id)
        present = present_run_ids(self.db, [run_id.lower() for run_id in wanted])
        fresh = [run_id for run_id in wanted if run_id.lower() not in present]
        self.summary.runs_present = len(wanted) - len(fresh)
        done = self.summary.runs_present
        self._tick("runs", done, len(wanted))
        for start in range(0, len(fresh), self.batch_size):
            batch = self.source.runs(fresh[start : start + self.batch_size])
            records = [self._record(run, experiments, by_run) for run in batch]
            self._ingest_runs(records)
            done += len(batch)
            self._tick("runs", done, len(wanted))

    def _record(
        self,
        run: MlflowRun,
        experiments: Mapping[str, MlflowExperiment],
        by_run: Mapping[str, list[MlflowModelVersion]],
    ) -> RunRecord:
        experiment = experiments[run.experiment_id]
        artifacts = list(self._files(f"run {run.run_id}", run.artifact_uri, ""))
        for version in by_run.get(run.run_id, ()):
            try:
                location = version_location(version, run.artifact_uri, self.source)
            except InvalidInputError as exc:
                self._skip(f"files of {version.model}:{version.version}", exc.message)
                continue
            prefix = f"{MODEL_FILES}/{modelrail_name(version.model)}/{version.version}/"
            artifacts += self._files(f"{version.model}:{version.version}", location, prefix)
        record, dropped = run_record(
            run,
            experiment=self._name("experiment", experiment.name),
            experiment_created_ms=experiment.created_ms,
            artifacts=artifacts,
            source=self.source.description,
        )
        if dropped:
            self._skip(f"run {run.run_id}", f"{dropped} metric point(s) that are NaN or infinite")
        return record

    def _files(self, what: str, location: str, prefix: str) -> Iterator[ArtifactRecord]:
        """Every file at ``location``, stored content-addressed (sha256) in this store."""
        if not location:
            return
        try:
            for entry in self.source.list_artifacts(location):
                blob = self.artifacts.put_bytes(self.source.read_artifact(location, entry.path))
                self.summary.artifacts += 1
                yield ArtifactRecord(prefix + entry.path, blob.sha256, blob.size)
        except ArtifactsUnreachable as exc:
            self._skip(f"artifacts of {what}", str(exc))

    def _ingest_runs(self, records: list[RunRecord]) -> None:
        try:
            report = ingest_runs(self._imports, records, source=self._origin, actor=self.actor)
        except (ImportConflictError, InvalidInputError):
            if len(records) == 1:
                raise
            # One run of the batch is refused: the others go in one by one, without it.
            for record in records:
                self._ingest_one(record)
            return
        self.summary.runs_imported += len(report.runs_added)
        self.summary.runs_present += len(report.runs_present)
        self.summary.metric_points += sum(
            len(r.metrics) for r in records if r.id in set(report.runs_added)
        )

    def _ingest_one(self, record: RunRecord) -> None:
        try:
            self._ingest_runs([record])
        except (ImportConflictError, InvalidInputError) as exc:
            self._skip(f"run {record.id}", exc.message)

    # -- registered models -------------------------------------------------------------------

    def _import_model(self, model: MlflowRegisteredModel) -> None:
        name = self._name("model", model.name)
        imported: set[int] = set()
        for index, version in enumerate(model.versions):
            if self._import_version(model, name, version):
                imported.add(version.version)
            self._tick(f"model {name}", index + 1, len(model.versions))
        found, left_out = placements(model, name, imported, self.chain, self.environments)
        for reason in left_out:
            self._skip(f"model {name}", reason)
        environments = EnvironmentRepository(self.db)
        for placement in found:
            holding = environments.holding(placement.model, placement.environment)
            where = f"{placement.model}:{placement.version} in {placement.environment}"
            if holding is not None:
                if holding.version != placement.version:
                    self._skip(
                        where,
                        f"{placement.environment} holds {placement.model}:{holding.version} "
                        "already; an import does not replace it",
                    )
                continue
            environments.change_holder(
                model=placement.model,
                environment=placement.environment,
                expected=None,
                version=placement.version,
                action="import",
                actor=self.actor,
                reason=f"{placement.because} in {self.source.description}",
            )
            self.summary.placed.append(f"{where} ({placement.because})")

    def _import_version(
        self, model: MlflowRegisteredModel, name: str, version: MlflowModelVersion
    ) -> bool:
        """Whether the version is here after this call (imported now or before)."""
        reference = f"{name}:{version.version}"
        origin = {"store": self.source.description, "model": model.name, "run_id": version.run_id}
        existing = self._existing(name, version.version)
        if existing is not None:
            if existing.flavor_details.get("mlflow") == origin:
                self.summary.versions_present.append(reference)
                return True
            self._skip(reference, "this store has a version of that number from elsewhere")
            return False
        if version.status != "READY":
            self._skip(reference, f"its MLflow status is {version.status}")
            return False
        run_id = version.run_id.lower() if version.run_id else None
        if run_id is not None and not present_run_ids(self.db, [run_id]):
            self._skip(reference, f"its run {run_id} was not imported")
            return False
        try:
            location = version_location(version, None, self.source)
            converted = convert(
                lambda path: self.source.read_artifact(location, path),
                trust_pickles=self.trust_pickles,
            )
        except (NotConverted, ArtifactsUnreachable, InvalidInputError) as exc:
            self._skip(reference, f"{exc}; its files stay with run {run_id or '(none)'}")
            return False
        try:
            record = version_record(
                self.artifacts,
                converted,
                version,
                name=name,
                run_id=run_id,
                created_by=version.user or self.actor,
                origin=origin,
                model_created_ms=model.created_ms,
            )
            ingest(
                self._imports,
                runs=(),
                versions=[record],
                source=self._origin,
                actor=self.actor,
            )
        except (ModelFlavorError, ImportConflictError, InvalidInputError) as exc:
            self._skip(reference, exc.message)
            return False
        finally:
            if isinstance(converted.model, Path):  # an ONNX file in a folder of its own
                shutil.rmtree(converted.model.parent, ignore_errors=True)
        self.summary.versions_imported.append(f"{reference} ({converted.how})")
        return True

    def _existing(self, name: str, number: int) -> Any:
        try:
            return ModelRepository(self.db).get_version(name, number)
        except (ModelNotFoundError, ModelVersionNotFoundError):
            return None

    # -- helpers --------------------------------------------------------------------------

    def _name(self, kind: str, name: str) -> str:
        cleaned = modelrail_name(name)
        if cleaned != name:
            self.summary.renamed[f"{kind} {name}"] = cleaned
        return cleaned

    def _skip(self, what: str, reason: str) -> None:
        self.summary.skipped.append(Skipped(what, reason))

    def _tick(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

"""An MLflow file store: the ``mlruns`` folder MLflow writes without a database.

Layout (MLflow 1.x to 3.x): ``<experiment id>/meta.yaml`` and ``tags/``; each run in
``<experiment id>/<run id>/`` with ``meta.yaml``, one file per param and tag (a key with a
``/`` is a sub-folder) and one file per metric of ``timestamp value [step]`` lines; the
registry in ``models/<name>/`` (``meta.yaml``, ``version-N/meta.yaml``, ``aliases/<alias>``).
Deleted experiments sit in ``.trash``, which an import leaves alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modelrail.errors import MlflowSourceError
from modelrail.portability.mlflow_artifacts import list_local, local_folder, read_local
from modelrail.portability.mlflow_records import (
    RUN_STATUSES,
    ArtifactEntry,
    MlflowExperiment,
    MlflowModelVersion,
    MlflowRegisteredModel,
    MlflowRun,
    MlflowRunKey,
)

_NOT_EXPERIMENTS = {".trash", "models"}


def read_yaml(path: Path) -> Any:
    """A YAML file's content (PyYAML's safe loader: plain data, never objects)."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - an install without the extra
        raise MlflowSourceError(
            "reading MLflow's YAML files needs PyYAML: pip install 'modelrail[mlflow]'"
        ) from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MlflowSourceError(f"cannot read {path}: {exc}") from exc


def _meta(path: Path) -> dict[str, Any]:
    found = read_yaml(path)
    if not isinstance(found, dict):
        raise MlflowSourceError(f"{path} is not an MLflow meta.yaml (it holds no mapping)")
    return found


def _key_files(folder: Path) -> dict[str, str]:
    """Each file below ``folder`` as key (its path, ``/`` for sub-folders) -> its text."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _ms(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


class FileSource:
    def __init__(self, source: str) -> None:
        folder = local_folder(source)
        if folder is None or not folder.is_dir():
            raise MlflowSourceError(f"{source} is not a folder")
        self.root = folder.resolve()
        self.description = str(self.root)
        self._experiment_dirs = {
            str(meta.get("experiment_id", path.name)): path
            for path, meta in self._experiment_metas()
        }
        if not self._experiment_dirs and not (self.root / "models").is_dir():
            raise MlflowSourceError(
                f"{self.root} is not an MLflow file store: no experiment folder with a "
                "meta.yaml in it (give the mlruns folder itself)"
            )

    def close(self) -> None:
        pass

    def _experiment_metas(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        for path in sorted(self.root.iterdir()):
            if path.name in _NOT_EXPERIMENTS or not (path / "meta.yaml").is_file():
                continue
            yield path, _meta(path / "meta.yaml")

    def experiments(self) -> list[MlflowExperiment]:
        return [
            MlflowExperiment(
                id=str(meta.get("experiment_id", path.name)),
                name=str(meta.get("name", path.name)),
                artifact_location=str(meta.get("artifact_location") or ""),
                created_ms=_ms(meta.get("creation_time")),
                deleted=meta.get("lifecycle_stage") == "deleted",
                tags=_key_files(path / "tags"),
            )
            for path, meta in self._experiment_metas()
        ]

    def _run_dirs(self) -> Iterator[tuple[str, Path]]:
        for experiment, folder in self._experiment_dirs.items():
            for path in folder.iterdir():
                if len(path.name) == 32 and (path / "meta.yaml").is_file():
                    yield experiment, path

    def run_keys(self) -> list[MlflowRunKey]:
        keyed = []
        for experiment, path in self._run_dirs():
            meta = _meta(path / "meta.yaml")
            keyed.append(
                (
                    _ms(meta.get("start_time")) or 0,
                    MlflowRunKey(
                        run_id=str(meta.get("run_id") or meta.get("run_uuid") or path.name),
                        experiment_id=experiment,
                        deleted=meta.get("lifecycle_stage") == "deleted",
                    ),
                )
            )
        keyed.sort(key=lambda item: (item[0], item[1].run_id))
        return [key for _, key in keyed]

    def runs(self, run_ids: Sequence[str]) -> list[MlflowRun]:
        wanted = set(run_ids)
        found: dict[str, MlflowRun] = {}
        for experiment, path in self._run_dirs():
            if path.name in wanted:
                found[path.name] = self._run(experiment, path)
        return [found[run_id] for run_id in run_ids if run_id in found]

    def _run(self, experiment: str, path: Path) -> MlflowRun:
        meta = _meta(path / "meta.yaml")
        tags = _key_files(path / "tags")
        metrics: list[tuple[str, float, int, int]] = []
        for key, content in _key_files(path / "metrics").items():
            for number, line in enumerate(content.splitlines(), 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) not in (2, 3):
                    raise MlflowSourceError(
                        f"{path / 'metrics' / key}, line {number}: expected "
                        f"'timestamp value [step]', found {line!r}"
                    )
                value = float(fields[1])
                step = int(fields[2]) if len(fields) == 3 else 0
                metrics.append(
                    (key, math.nan if math.isnan(value) else value, step, int(fields[0]))
                )
        # MLflow 3's file store writes a point again when it links a logged model to the run;
        # its database stores keep one row per distinct point, and so does an import.
        metrics = sorted(set(metrics), key=lambda point: (point[0], point[2], point[3]))
        status = meta.get("status", 3)
        return MlflowRun(
            run_id=path.name,
            experiment_id=experiment,
            name=str(meta.get("run_name") or tags.get("mlflow.runName", "")),
            status=RUN_STATUSES.get(status, str(status)) if isinstance(status, int) else status,
            user=str(meta.get("user_id") or tags.get("mlflow.user", "")),
            start_ms=_ms(meta.get("start_time")),
            end_ms=_ms(meta.get("end_time")),
            artifact_uri=str(meta.get("artifact_uri") or path / "artifacts"),
            params={k: v.strip("\n") for k, v in _key_files(path / "params").items()},
            tags=tags,
            metrics=metrics,
        )

    def registered_models(self) -> list[MlflowRegisteredModel]:
        registry = self.root / "models"
        if not registry.is_dir():
            return []
        models = []
        for folder in sorted(p for p in registry.iterdir() if (p / "meta.yaml").is_file()):
            meta = _meta(folder / "meta.yaml")
            aliases = {
                alias: int(text.strip()) for alias, text in _key_files(folder / "aliases").items()
            }
            versions = [
                self._version(str(meta.get("name", folder.name)), _meta(v / "meta.yaml"))
                for v in folder.iterdir()
                if v.name.startswith("version-") and (v / "meta.yaml").is_file()
            ]
            models.append(
                MlflowRegisteredModel(
                    name=str(meta.get("name", folder.name)),
                    description=str(meta.get("description") or ""),
                    created_ms=_ms(meta.get("creation_timestamp")),
                    versions=tuple(sorted(versions, key=lambda v: v.version)),
                    aliases=aliases,
                )
            )
        return models

    @staticmethod
    def _version(model: str, meta: dict[str, Any]) -> MlflowModelVersion:
        stage = meta.get("current_stage")
        return MlflowModelVersion(
            model=model,
            version=int(meta["version"]),
            run_id=meta.get("run_id") or None,
            source=str(meta.get("source") or ""),
            storage_location=meta.get("storage_location") or None,
            stage=stage if stage not in (None, "", "None") else None,
            status=str(meta.get("status") or "READY"),
            user=meta.get("user_id") or None,
            description=str(meta.get("description") or ""),
            created_ms=_ms(meta.get("creation_timestamp")),
        )

    def logged_model_location(self, model_id: str) -> str | None:
        for folder in self._experiment_dirs.values():
            meta = folder / "models" / model_id / "meta.yaml"
            if meta.is_file():
                location = _meta(meta).get("artifact_location")
                return str(location) if location else None
        return None

    def list_artifacts(self, location: str) -> Iterator[ArtifactEntry]:
        return list_local(location)

    def read_artifact(self, location: str, path: str) -> bytes:
        return read_local(location, path)

"""An MLflow database backend (``sqlite:///`` or ``postgresql://``), read with SQLAlchemy.

MLflow's own tables are read in bulk: a batch of runs costs four queries whatever its size.
The schema is checked before anything is read: every table and column the import uses must
be there, so a store written by an MLflow far older or newer than the ones known here is
refused with its schema revision named instead of half read.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from modelrail.errors import MlflowSourceError, MlflowSourceUnavailableError
from modelrail.portability.mlflow_artifacts import list_local, read_local
from modelrail.portability.mlflow_records import (
    ArtifactEntry,
    MlflowExperiment,
    MlflowModelVersion,
    MlflowRegisteredModel,
    MlflowRun,
    MlflowRunKey,
)
from modelrail.store.fast import FastStatement

# What the import reads, table by table (MLflow 1.x to 3.x all have these).
REQUIRED = {
    "experiments": {"experiment_id", "name", "artifact_location", "lifecycle_stage"},
    "runs": {
        "run_uuid",
        "name",
        "status",
        "user_id",
        "start_time",
        "end_time",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
    },
    "params": {"key", "value", "run_uuid"},
    "metrics": {"key", "value", "timestamp", "run_uuid", "step", "is_nan"},
    "tags": {"key", "value", "run_uuid"},
}
REGISTRY = {
    "registered_models": {"name", "description", "creation_time"},
    "model_versions": {
        "name",
        "version",
        "creation_time",
        "description",
        "user_id",
        "current_stage",
        "source",
        "run_id",
        "status",
    },
}


def engine_url(source: str) -> str:
    """The SQLAlchemy URL for a store's URL: SQLite opened read-only (an import never
    writes to the store it reads), PostgreSQL through psycopg (version 3)."""
    try:
        url = make_url(source)
    except ArgumentError as exc:
        raise MlflowSourceError(f"{source!r} is not a database URL") from exc
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            raise MlflowSourceError(f"{source!r} names no database file")
        path = Path(database)
        if not path.is_file():
            raise MlflowSourceError(f"MLflow database {database} does not exist")
        return f"sqlite:///file:{urllib.parse.quote(str(path.resolve()))}?mode=ro&uri=true"
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    raise MlflowSourceError(
        f"{url.get_backend_name()} MLflow stores are not read: give a sqlite:/// or "
        "postgresql:// URL, an mlruns folder or an MLflow server's http:// URL"
    )


class SqlSource:
    def __init__(self, source: str) -> None:
        self.description = make_url(source).render_as_string(hide_password=True)
        self._tables: set[str] = set()
        try:
            self.engine: Engine = create_engine(engine_url(source))
        except (NoSuchModuleError, ArgumentError) as exc:
            raise MlflowSourceError(f"cannot open {self.description}: {exc}") from exc
        try:
            self._columns = self._check_schema()
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def _check_schema(self) -> dict[str, set[str]]:
        try:
            inspector = inspect(self.engine)
            tables = set(inspector.get_table_names())
            self._tables = tables
            columns = {
                name: {c["name"] for c in inspector.get_columns(name)}
                for name in (*REQUIRED, *REGISTRY, "registered_model_aliases", "experiment_tags")
                if name in tables
            }
            revision = self._revision() if "alembic_version" in tables else None
        except DBAPIError as exc:
            raise MlflowSourceUnavailableError(
                f"cannot read the MLflow database {self.description}: {exc.orig}"
            ) from exc
        missing = [
            f"{table}.{column}" if table in columns else table
            for table, needed in REQUIRED.items()
            for column in (sorted(needed - columns[table]) if table in columns else [""])
        ]
        if missing:
            where = f" (schema revision {revision})" if revision else ""
            raise MlflowSourceError(
                f"{self.description} is not an MLflow tracking store this modelrail reads"
                f"{where}: it has no {', '.join(missing[:5])}"
            )
        for table, needed in REGISTRY.items():
            if table in columns and needed - columns[table]:
                raise MlflowSourceError(
                    f"{self.description}: the model registry's table {table} lacks "
                    f"{', '.join(sorted(needed - columns[table]))} (schema revision {revision})"
                )
        return columns

    def _revision(self) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def _rows(self, sql: str, **params: Any) -> list[Any]:
        """The rows as the driver's tuples (a million metric points are read without
        building SQLAlchemy rows)."""
        statement = FastStatement(text(sql), self.engine.dialect)
        try:
            with self.engine.connect() as conn:
                cursor = statement.execute(conn, params)
                try:
                    return list(cursor.fetchall())
                finally:
                    cursor.close()
        except SQLAlchemyError as exc:
            raise MlflowSourceUnavailableError(
                f"reading the MLflow database {self.description} failed: "
                f"{getattr(exc, 'orig', None) or exc}"
            ) from exc

    def experiments(self) -> list[MlflowExperiment]:
        created = "creation_time" if "creation_time" in self._columns["experiments"] else "NULL"
        tags: dict[str, dict[str, str]] = {}
        if "experiment_tags" in self._columns:
            for key, value, experiment in self._rows(
                "SELECT key, value, experiment_id FROM experiment_tags"
            ):
                tags.setdefault(str(experiment), {})[key] = value or ""
        return [
            MlflowExperiment(
                id=str(row[0]),
                name=row[1],
                artifact_location=row[2] or "",
                created_ms=None if row[4] is None else int(row[4]),
                deleted=row[3] == "deleted",
                tags=tags.get(str(row[0]), {}),
            )
            for row in self._rows(
                "SELECT experiment_id, name, artifact_location, lifecycle_stage, "
                f"{created} FROM experiments ORDER BY experiment_id"
            )
        ]

    def run_keys(self) -> list[MlflowRunKey]:
        return [
            MlflowRunKey(run_id=row[0], experiment_id=str(row[1]), deleted=row[2] == "deleted")
            for row in self._rows(
                "SELECT run_uuid, experiment_id, lifecycle_stage FROM runs "
                "ORDER BY start_time, run_uuid"
            )
        ]

    def runs(self, run_ids: Sequence[str]) -> list[MlflowRun]:
        ids = list(run_ids)
        if not ids:
            return []
        marks = ", ".join(f":r{i}" for i in range(len(ids)))
        bound = {f"r{i}": run_id for i, run_id in enumerate(ids)}
        params: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
        tags: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
        metrics: dict[str, list[tuple[str, float, int, int]]] = {run_id: [] for run_id in ids}
        where = f"WHERE run_uuid IN ({marks})"
        for key, value, run_id in self._rows(
            f"SELECT key, value, run_uuid FROM params {where}", **bound
        ):
            params[run_id][key] = value if value is not None else ""
        for key, value, run_id in self._rows(
            f"SELECT key, value, run_uuid FROM tags {where}", **bound
        ):
            tags[run_id][key] = value if value is not None else ""
        for key, value, step, stamp, is_nan, run_id in self._rows(
            'SELECT key, value, step, "timestamp", is_nan, run_uuid FROM metrics '
            f'{where} ORDER BY run_uuid, key, step, "timestamp"',
            **bound,
        ):
            number = math.nan if is_nan else float(value)
            metrics[run_id].append((key, number, int(step or 0), int(stamp or 0)))
        found = self._rows(
            "SELECT run_uuid, experiment_id, name, status, user_id, start_time, end_time, "
            f"artifact_uri FROM runs {where}",
            **bound,
        )
        by_id = {
            row[0]: MlflowRun(
                run_id=row[0],
                experiment_id=str(row[1]),
                name=row[2] or tags[row[0]].get("mlflow.runName", ""),
                status=row[3] or "FINISHED",
                user=row[4] or tags[row[0]].get("mlflow.user", ""),
                start_ms=None if row[5] is None else int(row[5]),
                end_ms=None if row[6] is None else int(row[6]),
                artifact_uri=row[7] or "",
                params=params[row[0]],
                tags=tags[row[0]],
                metrics=metrics[row[0]],
            )
            for row in found
        }
        return [by_id[run_id] for run_id in ids if run_id in by_id]

    def registered_models(self) -> list[MlflowRegisteredModel]:
        if "registered_models" not in self._columns or "model_versions" not in self._columns:
            return []
        storage = (
            "storage_location" if "storage_location" in self._columns["model_versions"] else "NULL"
        )
        versions: dict[str, list[MlflowModelVersion]] = {}
        for row in self._rows(
            "SELECT name, version, run_id, source, current_stage, status, user_id, "
            f"description, creation_time, {storage} FROM model_versions "
            "ORDER BY name, version"
        ):
            versions.setdefault(row[0], []).append(
                MlflowModelVersion(
                    model=row[0],
                    version=int(row[1]),
                    run_id=row[2] or None,
                    source=row[3] or "",
                    stage=row[4] if row[4] not in (None, "", "None") else None,
                    status=row[5] or "READY",
                    user=row[6] or None,
                    description=row[7] or "",
                    created_ms=None if row[8] is None else int(row[8]),
                    storage_location=row[9] or None,
                )
            )
        aliases: dict[str, dict[str, int]] = {}
        if "registered_model_aliases" in self._columns:
            for alias, version, name in self._rows(
                "SELECT alias, version, name FROM registered_model_aliases"
            ):
                aliases.setdefault(name, {})[alias] = int(version)
        return [
            MlflowRegisteredModel(
                name=row[0],
                description=row[1] or "",
                created_ms=None if row[2] is None else int(row[2]),
                versions=tuple(versions.get(row[0], ())),
                aliases=aliases.get(row[0], {}),
            )
            for row in self._rows(
                "SELECT name, description, creation_time FROM registered_models ORDER BY name"
            )
        ]

    def logged_model_location(self, model_id: str) -> str | None:
        if "logged_models" not in self._tables:
            return None
        rows = self._rows(
            "SELECT artifact_location FROM logged_models WHERE model_id = :model", model=model_id
        )
        return str(rows[0][0]) if rows and rows[0][0] else None

    def list_artifacts(self, location: str) -> Iterator[ArtifactEntry]:
        return list_local(location)

    def read_artifact(self, location: str, path: str) -> bytes:
        return read_local(location, path)

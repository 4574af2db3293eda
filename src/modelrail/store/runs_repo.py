"""Experiments, runs, params, metrics, tags, artifacts and their component versions."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from modelrail.entities import (
    ArtifactRecord,
    ComponentSpec,
    ComponentVersion,
    Experiment,
    MetricPoint,
    ModelVersionRef,
    Run,
    RunOwner,
)
from modelrail.errors import (
    ExperimentNotFoundError,
    InvalidInputError,
    ParamConflictError,
    RunNotFoundError,
    RunStateError,
)
from modelrail.store import tables as t
from modelrail.store.codec import dumps, loads
from modelrail.store.components_repo import ComponentLabels, component_from_row
from modelrail.store.db import Database
from modelrail.store.fast import FastStatement

# Prebuilt statements for the per-run hot path: building a statement costs more than running it.
_RUN_STATUS = select(t.runs.c.status).where(t.runs.c.id == bindparam("run"))
_RUN_OWNER = select(t.runs.c.id, t.runs.c.user_name, t.runs.c.status).where(
    t.runs.c.id == bindparam("run")
)
_EXPERIMENT = select(t.experiments.c.id, t.experiments.c.name, t.experiments.c.created_at).where(
    t.experiments.c.name == bindparam("name")
)
_END_RUN = (
    update(t.runs)
    .where(t.runs.c.id == bindparam("run"))
    .values(status=bindparam("status"), ended_at=bindparam("ended_at"), error=bindparam("error"))
)


_RUN_COLUMNS = tuple(c.name for c in t.runs.columns if c.name not in ("ended_at", "error"))
_METRIC_COLUMNS = ("run_id", "key", "value", "step", "timestamp")


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Built once: constructing an upsert costs more than executing it.
        dialect = db.engine.dialect
        self._fast = {
            "run": FastStatement(t.runs.insert(), dialect, _RUN_COLUMNS),
            "end": FastStatement(_END_RUN, dialect),
            "param": FastStatement(t.run_params.insert(), dialect),
            "metric": FastStatement(t.run_metrics.insert(), dialect, _METRIC_COLUMNS),
            "latest": FastStatement(_latest_metric_upsert(db.is_sqlite), dialect),
            "owner": FastStatement(_RUN_OWNER, dialect),
            "experiment": FastStatement(_EXPERIMENT, dialect),
        }
        self.components = ComponentLabels(db)

    # -- experiments ---------------------------------------------------------------

    def get_or_create_experiment(self, name: str) -> Experiment:
        find = self._fast["experiment"]  # every run starts here
        with self.db.read() as conn:
            row = find.first(conn, {"name": name})
        if row is not None:
            return _experiment(row)
        with self.db.write() as conn:
            self.db.lock(conn, f"experiment:{name}")
            row = find.first(conn, {"name": name})
            if row is None:
                conn.execute(t.experiments.insert().values(name=name, created_at=time.time()))
                row = find.first(conn, {"name": name})
        assert row is not None
        return _experiment(row)

    def list_experiments(self) -> list[Experiment]:
        with self.db.read() as conn:
            rows = conn.execute(select(t.experiments).order_by(t.experiments.c.name)).all()
        return [_experiment(r) for r in rows]

    def experiment_id(self, name: str) -> int:
        with self.db.read() as conn:
            found = conn.execute(
                select(t.experiments.c.id).where(t.experiments.c.name == name)
            ).scalar()
        if found is None:
            raise ExperimentNotFoundError(f"no experiment named {name!r}")
        return int(found)

    # -- run life cycle ----------------------------------------------------------------

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
        """Insert the run and label its known components in one transaction."""
        with self.db.write() as conn:
            self._fast["run"].execute(
                conn,
                {
                    "id": run_id,
                    "experiment_id": experiment_id,
                    "name": name,
                    "status": "running",
                    "architecture": architecture,
                    "user_name": user,
                    "started_at": started_at,
                    "provenance": provenance_json,
                },
            ).close()
            if tags:
                conn.execute(
                    t.run_tags.insert(),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                )
            versions = self.components.attach(conn, run_id, components, replace=False)
        self.components.remember(*versions)
        return {spec.role: version for spec, version in zip(components, versions, strict=True)}

    def end_run(
        self,
        run_id: str,
        *,
        status: str,
        ended_at: float,
        error: str | None,
        components: Sequence[ComponentSpec] = (),
    ) -> None:
        with self.db.write() as conn:
            # The params role is attached once, here, so there is nothing to replace.
            attached = self.components.attach(conn, run_id, components, replace=False)
            self._fast["end"].execute(
                conn, {"run": run_id, "status": status, "ended_at": ended_at, "error": error}
            ).close()
        self.components.remember(*attached)

    # -- params, metrics, tags ------------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Store params; the same key again must carry the same value."""
        encoded = {key: dumps(value) for key, value in params.items()}
        if not encoded:
            return
        rows = [{"run_id": run_id, "key": k, "value_json": v} for k, v in encoded.items()]
        try:
            # Fast path: new keys only. The primary key catches any repeat.
            with self.db.write() as conn:
                self._fast["param"].execute_many(conn, rows)
            return
        except IntegrityError:
            pass
        with self.db.write() as conn:
            existing = dict(
                conn.execute(
                    select(t.run_params.c.key, t.run_params.c.value_json).where(
                        t.run_params.c.run_id == run_id, t.run_params.c.key.in_(list(encoded))
                    )
                ).all()
            )
            for key, old in existing.items():
                if old != encoded[key]:
                    raise ParamConflictError(
                        f"parameter {key!r} was already logged in run {run_id[:8]} as "
                        f"{loads(old)!r}; it cannot change to {params[key]!r} "
                        "(start a new run to try another value)"
                    )
            new_rows = [row for row in rows if row["key"] not in existing]
            if new_rows:
                conn.execute(t.run_params.insert(), new_rows)

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        history = metric_rows(run_id, points)
        with self.db.write() as conn:
            self._fast["metric"].execute_many(conn, history)
            self._fast["latest"].execute_many(conn, latest_rows(history))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        with self.db.write() as conn:
            conn.execute(
                t.run_tags.delete().where(
                    t.run_tags.c.run_id == run_id, t.run_tags.c.key.in_(list(tags))
                )
            )
            conn.execute(
                t.run_tags.insert(),
                [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
            )

    def add_artifacts(self, run_id: str, records: Iterable[ArtifactRecord]) -> None:
        rows = [
            {"run_id": run_id, "path": r.path, "sha256": r.sha256, "size": r.size} for r in records
        ]
        if not rows:
            return
        with self.db.write() as conn:
            conn.execute(
                t.run_artifacts.delete().where(
                    t.run_artifacts.c.run_id == run_id,
                    t.run_artifacts.c.path.in_([r["path"] for r in rows]),
                )
            )
            conn.execute(t.run_artifacts.insert(), rows)

    def _require_running(self, conn: Connection, run_id: str) -> None:
        status = conn.execute(_RUN_STATUS, {"run": run_id}).scalar()
        if status is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        if status != "running":
            raise RunStateError(f"run {run_id[:8]} is {status}; it no longer accepts changes")

    # -- components ---------------------------------------------------------------------

    def attach_component(self, run_id: str, spec: ComponentSpec) -> ComponentVersion:
        """Label the content within its lineage and link it to the run under its role."""
        with self.db.write() as conn:
            self._require_running(conn, run_id)
            (version,) = self.components.attach(conn, run_id, [spec], replace=True)
        self.components.remember(version)
        return version

    # -- reading runs ---------------------------------------------------------------------

    def resolve_run_id(self, run_id: str) -> str:
        """Accept a full id or a unique prefix of at least 4 characters."""
        with self.db.read() as conn:
            if len(run_id) == 32:
                found = conn.execute(select(t.runs.c.id).where(t.runs.c.id == run_id)).scalar()
                if found is not None:
                    return str(found)
            if len(run_id) >= 4 and run_id.isalnum():
                matches = (
                    conn.execute(
                        select(t.runs.c.id).where(t.runs.c.id.startswith(run_id.lower())).limit(2)
                    )
                    .scalars()
                    .all()
                )
                if len(matches) == 1:
                    return str(matches[0])
                if len(matches) > 1:
                    raise InvalidInputError(f"run id prefix {run_id!r} is ambiguous")
        raise RunNotFoundError(f"no run with id {run_id!r}")

    def run_owner(self, run_id: str) -> RunOwner:
        """The run's full id, its user and status, in one read for a full id."""
        found = self.find_owner(run_id) if len(run_id) == 32 else None
        if found is None:
            found = self.find_owner(self.resolve_run_id(run_id))
        if found is None:  # deleted between the two reads
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return found

    def find_owner(self, run_id: str) -> RunOwner | None:
        """The run with exactly this full id (its user and status), or None."""
        with self.db.read() as conn:
            row = self._fast["owner"].first(conn, {"run": run_id})
        return (
            None if row is None else RunOwner(id=str(row[0]), user=str(row[1]), status=str(row[2]))
        )

    def get_run(self, run_id: str) -> Run:
        run_id = self.resolve_run_id(run_id)
        with self.db.read() as conn:
            row = conn.execute(
                select(t.runs, t.experiments.c.name.label("experiment_name"))
                .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
                .where(t.runs.c.id == run_id)
            ).one()
            params = {
                k: loads(v)
                for k, v in conn.execute(
                    select(t.run_params.c.key, t.run_params.c.value_json).where(
                        t.run_params.c.run_id == run_id
                    )
                ).all()
            }
            metrics = dict(
                conn.execute(
                    select(t.run_latest_metrics.c.key, t.run_latest_metrics.c.value).where(
                        t.run_latest_metrics.c.run_id == run_id
                    )
                ).all()
            )
            tags = dict(
                conn.execute(
                    select(t.run_tags.c.key, t.run_tags.c.value).where(
                        t.run_tags.c.run_id == run_id
                    )
                ).all()
            )
            components = {
                r.role: component_from_row(r)
                for r in conn.execute(
                    select(t.component_versions, t.run_components.c.role)
                    .join(
                        t.run_components,
                        t.run_components.c.component_version_id == t.component_versions.c.id,
                    )
                    .where(t.run_components.c.run_id == run_id)
                )
            }
            artifacts = tuple(
                ArtifactRecord(path=r.path, sha256=r.sha256, size=int(r.size))
                for r in conn.execute(
                    select(t.run_artifacts)
                    .where(t.run_artifacts.c.run_id == run_id)
                    .order_by(t.run_artifacts.c.path)
                )
            )
            versions = tuple(
                ModelVersionRef(model=r.name, version=int(r.version))
                for r in conn.execute(
                    select(t.models.c.name, t.model_versions.c.version)
                    .join(t.models, t.models.c.id == t.model_versions.c.model_id)
                    .where(t.model_versions.c.run_id == run_id)
                    .order_by(t.models.c.name, t.model_versions.c.version)
                )
            )
        return Run(
            id=row.id,
            experiment=row.experiment_name,
            name=row.name,
            status=row.status,
            architecture=row.architecture,
            user=row.user_name,
            started_at=row.started_at,
            ended_at=row.ended_at,
            error=row.error,
            params=params,
            metrics=metrics,
            tags=tags,
            components=components,
            provenance=loads(row.provenance),
            artifacts=artifacts,
            model_versions=versions,
        )

    def metric_history(self, run_id: str, key: str | None = None) -> list[MetricPoint]:
        m = t.run_metrics
        query = select(m.c.key, m.c.value, m.c.step, m.c.timestamp).where(m.c.run_id == run_id)
        if key is not None:
            query = query.where(m.c.key == key)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(m.c.key, m.c.step, m.c.timestamp, m.c.id)).all()
            return [MetricPoint(k, float(v), int(s), float(ts)) for k, v, s, ts in rows]


def metric_rows(run_id: str, points: Sequence[MetricPoint]) -> list[dict[str, Any]]:
    """The ``run_metrics`` rows of ``points``."""
    return [
        {"run_id": run_id, "key": p.key, "value": p.value, "step": p.step, "timestamp": p.timestamp}
        for p in points
    ]


def latest_rows(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last of each key's rows, by step then time: what ``run_latest_metrics`` keeps."""
    latest: dict[str, dict[str, Any]] = {}
    for row in history:
        previous = latest.get(row["key"])
        if previous is None or (row["step"], row["timestamp"]) >= (
            previous["step"],
            previous["timestamp"],
        ):
            latest[row["key"]] = row
    return list(latest.values())


def _latest_metric_upsert(is_sqlite: bool) -> Any:
    statement: Any
    if is_sqlite:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(t.run_latest_metrics)
    else:
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        statement = postgresql_insert(t.run_latest_metrics)
    excluded = statement.excluded
    current = t.run_latest_metrics.c
    # The last step wins; a later log of an earlier step does not roll the summary back.
    newer = (excluded.step > current.step) | (
        (excluded.step == current.step) & (excluded.timestamp >= current.timestamp)
    )
    return statement.on_conflict_do_update(
        index_elements=["run_id", "key"],
        set_={"value": excluded.value, "step": excluded.step, "timestamp": excluded.timestamp},
        where=newer,
    )


def _experiment(row: Sequence[Any]) -> Experiment:
    """An experiment from its row's id, name and created_at, in that order."""
    return Experiment(id=int(row[0]), name=str(row[1]), created_at=float(row[2]))

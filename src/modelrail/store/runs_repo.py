"""Experiments, runs, params, metrics, tags, artifacts and their component versions."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from modelrail.entities import (
    ArtifactRecord,
    ComponentSpec,
    ComponentVersion,
    Experiment,
    MetricPoint,
    ModelVersionRef,
    Run,
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
from modelrail.store.db import Database

# Prebuilt statements for the per-run hot path: building a statement costs more than running it.
_RUN_STATUS = select(t.runs.c.status).where(t.runs.c.id == bindparam("run"))
_END_RUN = (
    update(t.runs)
    .where(t.runs.c.id == bindparam("run"))
    .values(status=bindparam("status"), ended_at=bindparam("ended_at"), error=bindparam("error"))
)


class RunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Built once: constructing an upsert costs more than executing it.
        self._latest_upsert = _latest_metric_upsert(db.is_sqlite)
        # A label never changes once given, so known (lineage, fingerprint) pairs are cached.
        self._labelled: dict[tuple[str, str], ComponentVersion] = {}

    # -- experiments ---------------------------------------------------------------

    def get_or_create_experiment(self, name: str) -> Experiment:
        with self.db.read() as conn:
            row = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).first()
        if row is not None:
            return _experiment(row)
        with self.db.write() as conn:
            self.db.lock(conn, f"experiment:{name}")
            row = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).first()
            if row is None:
                conn.execute(t.experiments.insert().values(name=name, created_at=time.time()))
                row = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).one()
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
        provenance: Mapping[str, Any],
        tags: Mapping[str, str],
        components: Sequence[ComponentSpec] = (),
    ) -> dict[str, ComponentVersion]:
        """Insert the run and label its known components in one transaction."""
        with self.db.write() as conn:
            conn.execute(
                t.runs.insert(),
                {
                    "id": run_id,
                    "experiment_id": experiment_id,
                    "name": name,
                    "status": "running",
                    "architecture": architecture,
                    "user_name": user,
                    "started_at": started_at,
                    "provenance": dumps(provenance),
                },
            )
            if tags:
                conn.execute(
                    t.run_tags.insert(),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
                )
            attached = {
                spec.role: self._attach(conn, run_id, spec, replace=False) for spec in components
            }
        self._remember(*attached.values())
        return attached

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
            attached = [self._attach(conn, run_id, spec, replace=True) for spec in components]
            conn.execute(
                _END_RUN, {"run": run_id, "status": status, "ended_at": ended_at, "error": error}
            )
        self._remember(*attached)

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
                self._require_running(conn, run_id)
                conn.execute(t.run_params.insert(), rows)
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
        history: list[dict[str, Any]] = [
            {
                "run_id": run_id,
                "key": p.key,
                "value": p.value,
                "step": p.step,
                "timestamp": p.timestamp,
            }
            for p in points
        ]
        latest: dict[str, dict[str, Any]] = {}
        for row in history:
            previous = latest.get(row["key"])
            if previous is None or (row["step"], row["timestamp"]) >= (
                previous["step"],
                previous["timestamp"],
            ):
                latest[row["key"]] = row
        with self.db.write() as conn:
            conn.execute(t.run_metrics.insert(), history)
            self._upsert_latest(conn, list(latest.values()))

    def _upsert_latest(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        conn.execute(self._latest_upsert, rows)

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
            version = self._attach(conn, run_id, spec, replace=True)
        self._remember(version)
        return version

    def _attach(
        self, conn: Connection, run_id: str, spec: ComponentSpec, *, replace: bool
    ) -> ComponentVersion:
        version = self._labelled.get((spec.lineage, spec.fingerprint))
        if version is None:
            self.db.lock(conn, f"lineage:{spec.lineage}")
            version = self._find_or_label(conn, spec)
        if replace:
            conn.execute(
                t.run_components.delete().where(
                    t.run_components.c.run_id == run_id, t.run_components.c.role == spec.role
                )
            )
        conn.execute(
            t.run_components.insert(),
            {"run_id": run_id, "role": spec.role, "component_version_id": version.id},
        )
        return version

    def _find_or_label(self, conn: Connection, spec: ComponentSpec) -> ComponentVersion:
        cv = t.component_versions
        lineage, fingerprint = spec.lineage, spec.fingerprint
        found = conn.execute(
            select(cv).where(cv.c.lineage == lineage, cv.c.fingerprint == fingerprint)
        ).first()
        if found is not None:
            return _component(found)
        major = conn.execute(
            select(cv.c.major)
            .where(cv.c.lineage == lineage, cv.c.shape_fingerprint == spec.shape_fingerprint)
            .limit(1)
        ).scalar()
        if major is None:
            top = conn.execute(select(func.max(cv.c.major)).where(cv.c.lineage == lineage)).scalar()
            major, minor = (top or 0) + 1, 0
        else:
            top_minor = conn.execute(
                select(func.max(cv.c.minor)).where(cv.c.lineage == lineage, cv.c.major == major)
            ).scalar()
            minor = int(top_minor or 0) + 1
        conn.execute(
            cv.insert().values(
                kind=spec.kind,
                lineage=lineage,
                fingerprint=fingerprint,
                shape_fingerprint=spec.shape_fingerprint,
                major=major,
                minor=minor,
                details=dumps(dict(spec.details)),
                created_at=time.time(),
            )
        )
        row = conn.execute(
            select(cv).where(cv.c.lineage == lineage, cv.c.fingerprint == fingerprint)
        ).one()
        return _component(row)

    def _remember(self, *versions: ComponentVersion) -> None:
        # Only after commit: another thread must never link to a label that may roll back.
        for version in versions:
            self._labelled[(version.lineage, version.fingerprint)] = version

    def component_versions(self, kind: str | None = None) -> list[ComponentVersion]:
        cv = t.component_versions
        query = select(cv).order_by(cv.c.lineage, cv.c.major, cv.c.minor)
        if kind is not None:
            query = query.where(cv.c.kind == kind)
        with self.db.read() as conn:
            return [_component(r) for r in conn.execute(query)]

    def component_usage(self) -> dict[int, int]:
        """How many runs used each component version."""
        rc = t.run_components
        with self.db.read() as conn:
            rows = conn.execute(
                select(rc.c.component_version_id, func.count()).group_by(rc.c.component_version_id)
            ).all()
            return {int(k): int(v) for k, v in rows}

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
                r.role: _component(r)
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


def _experiment(row: Row[Any]) -> Experiment:
    return Experiment(id=int(row.id), name=row.name, created_at=float(row.created_at))


def _component(row: Row[Any]) -> ComponentVersion:
    return ComponentVersion(
        id=int(row.id),
        kind=row.kind,
        lineage=row.lineage,
        fingerprint=row.fingerprint,
        shape_fingerprint=row.shape_fingerprint,
        major=int(row.major),
        minor=int(row.minor),
        details=loads(row.details),
        created_at=float(row.created_at),
    )

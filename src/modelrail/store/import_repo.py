"""Writing records that come from elsewhere (a bundle, another tracker) with their own
ids, numbers, labels, times and authors, and reading them back for comparison.

Everything happens inside one write transaction (``ImportRepository.transaction``): the
caller compares, writes and marks, and a refusal anywhere rolls all of it back. The
policy (what counts as a conflict, what is new) is ``portability.ingest``'s; this module
only knows the tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError

from modelrail.entities import ComponentSpec
from modelrail.portability.records import (
    ComponentRecord,
    HistoryRecord,
    ImportSource,
    RunRecord,
    VersionRecord,
)
from modelrail.store import tables as t
from modelrail.store.codec import dumps, loads
from modelrail.store.components_repo import ComponentLabels
from modelrail.store.db import Database
from modelrail.store.fast import FastStatement
from modelrail.store.import_reads import read_run, read_version

# The history event that marks a version's arrival by import, and the environment it names:
# none (``-`` is no valid name). Not ``import``, which places a version in an environment
# (``modelrail import-mlflow``, for MLflow's stages and aliases).
IMPORTED_ACTION = "imported"
IMPORT_ENVIRONMENT = "-"


@dataclass(frozen=True)
class Relabel:
    """A component whose source label was taken here by other content, so this store gave
    the content a label of its own."""

    run_id: str
    role: str
    lineage: str
    source_label: str | None
    label: str


@dataclass(frozen=True)
class ImportRow:
    """One import as the store keeps it."""

    id: int
    kind: str
    source: str
    source_store: str
    sha256: str | None
    imported_by: str
    imported_at: float
    summary: dict[str, Any]


@dataclass(frozen=True)
class ImportedEvent:
    """An event of another store's history, with the import that brought it."""

    import_id: int
    record: HistoryRecord


class ImportRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def transaction(self) -> Iterator[ImportWriter]:
        """One write transaction for a whole import: committed when the block ends, rolled
        back (nothing written) when it raises."""
        with self.db.write() as conn:
            # Two imports at once would each find the other's records missing: one at a time.
            self.db.lock(conn, "modelrail:import")
            yield ImportWriter(self.db, conn)

    def store_id(self) -> str:
        """The random id that names this store in the bundles it writes."""
        with self.db.read() as conn:
            return str(conn.execute(select(t.store_identity.c.id)).scalar_one())

    def imports(self) -> list[ImportRow]:
        i = t.imports
        with self.db.read() as conn:
            rows = conn.execute(select(i).order_by(i.c.id)).all()
        return [
            ImportRow(
                id=int(r.id),
                kind=r.kind,
                source=r.source,
                source_store=r.source_store,
                sha256=r.sha256,
                imported_by=r.imported_by,
                imported_at=float(r.imported_at),
                summary=loads(r.summary),
            )
            for r in rows
        ]

    def imported_events(self, model: str | None = None) -> list[ImportedEvent]:
        """Other stores' history of the versions imported here (of ``model``, or all), by
        time (each store's own order where times tie)."""
        e = t.imported_events
        query = select(e, t.models.c.name).join(t.models, t.models.c.id == e.c.model_id)
        if model is not None:
            query = query.where(t.models.c.name == model)
        with self.db.read() as conn:
            rows = conn.execute(query.order_by(e.c.created_at, e.c.origin, e.c.origin_id)).all()
        return [ImportedEvent(int(r.import_id), _history(r)) for r in rows]


class ImportWriter:
    """The reads and writes of one import, all on one connection in one transaction."""

    def __init__(self, db: Database, conn: Connection) -> None:
        self.db = db
        self.conn = conn
        self._labels = ComponentLabels(db)

    # -- runs ----------------------------------------------------------------------------

    def run(self, run_id: str) -> RunRecord | None:
        """The run stored under exactly this id, as a record, or None."""
        return read_run(self.conn, run_id)

    def has_run(self, run_id: str) -> bool:
        found = self.conn.execute(select(t.runs.c.id).where(t.runs.c.id == run_id)).first()
        return found is not None

    def add_run(self, record: RunRecord) -> list[Relabel]:
        """Insert a run that is not here, with everything it holds; components keep their
        source labels where this store can (see ``_label``)."""
        return self.add_new_runs([record])

    def present_runs(self, run_ids: Sequence[str]) -> set[str]:
        """Which of ``run_ids`` this store holds (one query per 500 ids)."""
        found: set[str] = set()
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            query = select(t.runs.c.id).where(t.runs.c.id.in_(chunk))
            found.update(str(run_id) for run_id in self.conn.execute(query).scalars())
        return found

    def add_new_runs(self, records: Sequence[RunRecord]) -> list[Relabel]:
        """Insert runs none of which is here, with everything they hold, one statement per
        table for all of them (an importer of 10,000s of runs): a million metric points go
        to the driver's ``executemany`` without SQLAlchemy's per-row bookkeeping."""
        if not records:
            return []
        conn = self.conn
        experiments: dict[str, int] = {}
        runs, params, tags, points, latest, files = [], [], [], [], [], []
        for record in records:
            if record.experiment not in experiments:
                experiments[record.experiment] = self._experiment(record)
            run_id = record.id
            runs.append(
                {
                    "id": run_id,
                    "experiment_id": experiments[record.experiment],
                    "name": record.name,
                    "status": record.status,
                    "architecture": record.architecture,
                    "user_name": record.user,
                    "started_at": record.started_at,
                    "ended_at": record.ended_at,
                    "error": record.error,
                    "provenance": dumps(dict(record.provenance)),
                }
            )
            params += [
                {"run_id": run_id, "key": k, "value_json": dumps(v)}
                for k, v in record.params.items()
            ]
            tags += [{"run_id": run_id, "key": k, "value": v} for k, v in record.tags.items()]
            history = [(run_id, p.key, p.value, p.step, p.timestamp) for p in record.metrics]
            points += history
            latest += _latest_tuples(history)
            files += [
                {"run_id": run_id, "path": x.path, "sha256": x.sha256, "size": x.size}
                for x in record.artifacts
            ]
        conn.execute(t.runs.insert(), runs)
        for table, rows in ((t.run_params, params), (t.run_tags, tags), (t.run_artifacts, files)):
            if rows:
                FastStatement(table.insert(), conn.dialect, list(rows[0])).execute_many(conn, rows)
        for table, tuples in ((t.run_metrics, points), (t.run_latest_metrics, latest)):
            _insert_tuples(conn, table, _METRIC_KEYS, tuples)
        return [
            relabel
            for record in records
            for c in record.components
            if (relabel := self._label(record.id, c)) is not None
        ]

    def _experiment(self, record: RunRecord) -> int:
        e = t.experiments
        self.db.lock(self.conn, f"experiment:{record.experiment}")
        found = self.conn.execute(select(e.c.id).where(e.c.name == record.experiment)).scalar()
        if found is None:
            created = record.experiment_created_at or record.started_at
            self.conn.execute(e.insert().values(name=record.experiment, created_at=created))
            found = self.conn.execute(
                select(e.c.id).where(e.c.name == record.experiment)
            ).scalar_one()
        return int(found)

    def _label(self, run_id: str, component: ComponentRecord) -> Relabel | None:
        """Link the component to the run under the label it had in its source store when
        that label is free here and fits this store's lineage (a shape keeps one major
        number); otherwise under this store's own label for the content."""
        conn, cv = self.conn, t.component_versions
        self.db.lock(conn, f"lineage:{component.lineage}")
        in_lineage = cv.c.lineage == component.lineage
        found = conn.execute(
            select(cv.c.id, cv.c.major, cv.c.minor).where(
                in_lineage, cv.c.fingerprint == component.fingerprint
            )
        ).first()
        if found is None and self._label_fits(component):
            found = conn.execute(
                cv.insert()
                .values(
                    kind=component.kind,
                    lineage=component.lineage,
                    fingerprint=component.fingerprint,
                    shape_fingerprint=component.shape_fingerprint,
                    major=component.major,
                    minor=component.minor,
                    details=dumps(dict(component.details)),
                    created_at=component.created_at or 0.0,
                )
                .returning(cv.c.id, cv.c.major, cv.c.minor)
            ).first()
        if found is None:  # labelled by this store's own rules, and linked
            spec = ComponentSpec(
                role=component.role,
                kind=component.kind,
                lineage=component.lineage,
                fingerprint=component.fingerprint,
                shape_fingerprint=component.shape_fingerprint,
                details=component.details,
            )
            (version,) = self._labels.attach(conn, run_id, [spec], replace=False)
            label = version.label
        else:
            conn.execute(
                t.run_components.insert(),
                {"run_id": run_id, "role": component.role, "component_version_id": int(found[0])},
            )
            label = f"{found[1]}.{found[2]}"
        if component.label is None or component.label == label:
            return None
        return Relabel(run_id, component.role, component.lineage, component.label, label)

    def _label_fits(self, component: ComponentRecord) -> bool:
        if component.major is None or component.minor is None:
            return False
        conn, table = self.conn, t.component_versions
        in_lineage = table.c.lineage == component.lineage
        taken = conn.execute(
            select(func.count()).where(
                in_lineage, table.c.major == component.major, table.c.minor == component.minor
            )
        ).scalar_one()
        # Every content of one shape shares a major number, and a major holds one shape.
        majors = set(
            conn.execute(
                select(table.c.major)
                .where(in_lineage, table.c.shape_fingerprint == component.shape_fingerprint)
                .distinct()
            ).scalars()
        )
        shapes = set(
            conn.execute(
                select(table.c.shape_fingerprint)
                .where(in_lineage, table.c.major == component.major)
                .distinct()
            ).scalars()
        )
        return not taken and majors <= {component.major} and shapes <= {component.shape_fingerprint}

    # -- model versions --------------------------------------------------------------------

    def version(self, model: str, version: int) -> VersionRecord | None:
        """Version ``version`` of ``model`` as a record, or None when it is not here."""
        return read_version(self.conn, model, version)

    def add_version(self, record: VersionRecord) -> None:
        """Insert a version under its own number (the model is created if need be; a later
        registration here takes the number after the highest)."""
        conn = self.conn
        self.db.lock(conn, f"model:{record.model}")  # as a registration does
        model_id = self.model_id(record.model)
        if model_id is None:
            created = record.model_created_at or record.created_at
            conn.execute(t.models.insert().values(name=record.model, created_at=created))
            model_id = self.model_id(record.model)
        assert model_id is not None
        mv = t.model_versions
        (version_id,) = conn.execute(
            mv.insert()
            .values(
                model_id=model_id,
                version=record.version,
                run_id=record.run_id,
                flavor=record.flavor,
                artifact_sha256=record.artifact_sha256,
                artifact_size=record.artifact_size,
                signature=dumps(dict(record.signature)),
                input_example=dumps(record.input_example),
                flavor_details=dumps(dict(record.flavor_details)),
                description=record.description,
                created_at=record.created_at,
                created_by=record.created_by,
            )
            .returning(mv.c.id)
        ).one()
        if record.reference_profile is not None:
            conn.execute(
                t.reference_profiles.insert().values(
                    model_version_id=version_id,
                    record=dumps(dict(record.reference_profile)),
                    created_at=record.created_at,
                    created_by=record.created_by,
                )
            )
        if record.forms is not None:
            conn.execute(
                t.model_version_forms.insert().values(
                    model_version_id=version_id,
                    record=dumps(dict(record.forms)),
                    created_at=record.created_at,
                    created_by=record.created_by,
                )
            )

    def model_id(self, name: str) -> int | None:
        found = self.conn.execute(select(t.models.c.id).where(t.models.c.name == name)).scalar()
        return None if found is None else int(found)

    # -- history ------------------------------------------------------------------------------

    def known_events(self, origin: str) -> set[int]:
        """The ids of ``origin``'s events this store already keeps."""
        e = t.imported_events
        return set(self.conn.execute(select(e.c.origin_id).where(e.c.origin == origin)).scalars())

    def add_import(
        self, source: ImportSource, *, actor: str, at: float, summary: dict[str, Any]
    ) -> int:
        row = self.conn.execute(
            t.imports.insert()
            .values(
                kind=source.kind,
                source=source.name,
                source_store=source.store,
                sha256=source.sha256,
                imported_by=actor,
                imported_at=at,
                summary=dumps(summary),
            )
            .returning(t.imports.c.id)
        ).one()
        return int(row[0])

    def add_imported_events(self, import_id: int, events: Sequence[HistoryRecord]) -> None:
        rows = []
        for event in events:
            model_id = self.model_id(event.model)
            assert model_id is not None, "an event's model is imported before its history"
            rows.append(
                {
                    "import_id": import_id,
                    "model_id": model_id,
                    "origin": event.origin,
                    "origin_id": event.origin_id,
                    "environment": event.environment,
                    "action": event.action,
                    "from_version": event.from_version,
                    "to_version": event.to_version,
                    "actor": event.actor,
                    "reason": event.reason,
                    "gates": dumps([dict(g) for g in event.gates]),
                    "forced": event.forced,
                    "request_id": event.request_id,
                    "policy_version": event.policy_version,
                    "created_at": event.created_at,
                }
            )
        if rows:
            self.conn.execute(t.imported_events.insert(), rows)

    def mark_imported(
        self, model: str, version: int, *, actor: str, reason: str, at: float
    ) -> None:
        """This store's own history says who imported the version, from where and when: an
        ``imported`` event in no environment (it places the version nowhere)."""
        model_id = self.model_id(model)
        assert model_id is not None
        self.conn.execute(
            t.environment_events.insert(),
            {
                "model_id": model_id,
                "environment": IMPORT_ENVIRONMENT,
                "action": IMPORTED_ACTION,
                "from_version": None,
                "to_version": version,
                "actor": actor,
                "reason": reason,
                "gates": "[]",
                "forced": False,
                "request_id": None,
                "policy_version": None,
                "created_at": at,
            },
        )


_METRIC_KEYS = ("run_id", "key", "value", "step", "timestamp")


def _latest_tuples(history: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """``latest_rows`` over (run_id, key, value, step, timestamp) tuples."""
    latest: dict[str, tuple[Any, ...]] = {}
    for row in history:
        previous = latest.get(row[1])
        if previous is None or (row[3], row[4]) >= (previous[3], previous[4]):
            latest[row[1]] = row
    return list(latest.values())


def _insert_tuples(
    conn: Connection, table: Any, keys: Sequence[str], tuples: Sequence[tuple[Any, ...]]
) -> None:
    """Rows given as tuples in ``keys``' order, straight to the driver when its parameter
    style is positional in that order (SQLite's), else as mappings."""
    if not tuples:
        return
    statement = FastStatement(table.insert(), conn.dialect, keys)
    if statement.order == tuple(keys):
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(statement.sql, tuples)
        except conn.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy's own errors
            raise DBAPIError.instance(
                statement.sql, None, exc, conn.dialect.loaded_dbapi.Error
            ) from exc
        finally:
            cursor.close()
    else:
        statement.execute_many(conn, [dict(zip(keys, row, strict=True)) for row in tuples])


def _history(row: Any) -> HistoryRecord:
    return HistoryRecord(
        origin=row.origin,
        origin_id=int(row.origin_id),
        model=row.name,
        environment=row.environment,
        action=row.action,
        from_version=row.from_version,
        to_version=row.to_version,
        actor=row.actor,
        reason=row.reason,
        created_at=float(row.created_at),
        gates=tuple(loads(row.gates)),
        forced=bool(row.forced),
        request_id=row.request_id,
        policy_version=row.policy_version,
    )

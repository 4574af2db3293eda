"""Component versions: labelling content (code, data, params, environment) within its
lineage as ``major.minor``, and linking the labels to the runs that used them.

A new shape in a lineage takes the next major number; new content of a known shape the
next minor of that major. Labels never change once given.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select

from modelrail.entities import ComponentSpec, ComponentVersion
from modelrail.store import tables as t
from modelrail.store.codec import dumps, loads
from modelrail.store.db import Database
from modelrail.store.fast import FastStatement

_CV = t.component_versions
_CV_COLUMNS = tuple(c.name for c in _CV.columns if c.name != "id")
_FIND = select(_CV).where(
    _CV.c.lineage == bindparam("lineage"), _CV.c.fingerprint == bindparam("fingerprint")
)
_SHAPE_LABEL = (
    select(_CV.c.major, _CV.c.minor)
    .where(_CV.c.lineage == bindparam("lineage"), _CV.c.shape_fingerprint == bindparam("shape"))
    .order_by(_CV.c.major.desc(), _CV.c.minor.desc())
    .limit(1)
)
_TOP_MAJOR = select(func.max(_CV.c.major)).where(_CV.c.lineage == bindparam("lineage"))
_UNLINK = t.run_components.delete().where(
    t.run_components.c.run_id == bindparam("run"),
    t.run_components.c.role == bindparam("role"),
)


class ComponentLabels:
    def __init__(self, db: Database) -> None:
        self.db = db
        dialect = db.engine.dialect
        self._fast = {
            "link": FastStatement(t.run_components.insert(), dialect),
            "unlink": FastStatement(_UNLINK, dialect),
            "find": FastStatement(_FIND, dialect),
            "shape": FastStatement(_SHAPE_LABEL, dialect),
            "top": FastStatement(_TOP_MAJOR, dialect),
            "label": FastStatement(_CV.insert().returning(_CV.c.id), dialect, _CV_COLUMNS),
        }
        # A label never changes once given, so known (lineage, fingerprint) pairs are cached.
        self._labelled: dict[tuple[str, str], ComponentVersion] = {}

    def attach(
        self, conn: Connection, run_id: str, specs: Sequence[ComponentSpec], *, replace: bool
    ) -> list[ComponentVersion]:
        """Label each spec (reusing known labels) and link them all to the run, inside the
        caller's transaction; ``replace`` first unlinks what the run had under those roles.
        Call ``remember`` with the result once that transaction has committed."""
        versions = []
        for spec in specs:
            version = self._labelled.get((spec.lineage, spec.fingerprint))
            if version is None:
                self.db.lock(conn, f"lineage:{spec.lineage}")
                version = self._find_or_label(conn, spec)
            versions.append(version)
        if not versions:
            return versions
        if replace:
            self._fast["unlink"].execute_many(
                conn, [{"run": run_id, "role": spec.role} for spec in specs]
            )
        self._fast["link"].execute_many(
            conn,
            [
                {"run_id": run_id, "role": spec.role, "component_version_id": version.id}
                for spec, version in zip(specs, versions, strict=True)
            ],
        )
        return versions

    def remember(self, *versions: ComponentVersion) -> None:
        # Only after commit: another thread must never link to a label that may roll back.
        for version in versions:
            self._labelled[(version.lineage, version.fingerprint)] = version

    def versions(self, kind: str | None = None) -> list[ComponentVersion]:
        query = select(_CV).order_by(_CV.c.lineage, _CV.c.major, _CV.c.minor)
        if kind is not None:
            query = query.where(_CV.c.kind == kind)
        with self.db.read() as conn:
            return [component_from_row(r) for r in conn.execute(query)]

    def usage(self) -> dict[int, int]:
        """How many runs used each component version."""
        rc = t.run_components
        with self.db.read() as conn:
            rows = conn.execute(
                select(rc.c.component_version_id, func.count()).group_by(rc.c.component_version_id)
            ).all()
            return {int(k): int(v) for k, v in rows}

    def _find_or_label(self, conn: Connection, spec: ComponentSpec) -> ComponentVersion:
        lineage = {"lineage": spec.lineage}
        fast = self._fast
        found = fast["find"].first(conn, {**lineage, "fingerprint": spec.fingerprint})
        if found is not None:
            return _from_values(int(found[0]), dict(zip(_CV_COLUMNS, found[1:], strict=True)))
        # A shape keeps its major number for good, so one query finds it and its last minor.
        known = fast["shape"].first(conn, {**lineage, "shape": spec.shape_fingerprint})
        if known is None:
            top = fast["top"].first(conn, lineage)
            major, minor = ((top[0] if top else None) or 0) + 1, 0
        else:
            major, minor = int(known[0]), int(known[1]) + 1
        row = {
            "kind": spec.kind,
            "lineage": spec.lineage,
            "fingerprint": spec.fingerprint,
            "shape_fingerprint": spec.shape_fingerprint,
            "major": major,
            "minor": minor,
            "details": dumps(dict(spec.details)),
            "created_at": time.time(),
        }
        new_id = fast["label"].first(conn, row)
        assert new_id is not None
        return _from_values(int(new_id[0]), row)


def component_from_row(row: Row[Any]) -> ComponentVersion:
    return _from_values(int(row.id), row._mapping)


def _from_values(new_id: int, row: Any) -> ComponentVersion:
    return ComponentVersion(
        id=new_id,
        kind=row["kind"],
        lineage=row["lineage"],
        fingerprint=row["fingerprint"],
        shape_fingerprint=row["shape_fingerprint"],
        major=int(row["major"]),
        minor=int(row["minor"]),
        details=loads(row["details"]),
        created_at=float(row["created_at"]),
    )

"""Models and their immutable, numbered versions."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, func, select

from modelrail.entities import Model, ModelVersion, Signature
from modelrail.errors import ConflictError, ModelNotFoundError, ModelVersionNotFoundError
from modelrail.store import tables as t
from modelrail.store.codec import dumps, loads
from modelrail.store.db import Database


class ModelRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_version(
        self,
        *,
        name: str,
        run_id: str | None,
        flavor: str,
        artifact_sha256: str,
        artifact_size: int,
        signature: Signature,
        input_example: Any,
        flavor_details: Mapping[str, Any],
        description: str,
        created_by: str,
        forms: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> ModelVersion:
        """Register the next version number of ``name`` (creating the model on first use),
        with its predictor forms record when it has one, in the same transaction. A
        registration ``key`` seen before returns the version it made then (a client's retry)."""
        now = time.time()
        with self.db.write() as conn:
            self.db.lock(conn, f"model:{name}")
            if key is not None:
                made = self._keyed(conn, name, key)
                if made is not None:
                    return self.get_version(name, made)
            model_id = conn.execute(select(t.models.c.id).where(t.models.c.name == name)).scalar()
            if model_id is None:
                conn.execute(t.models.insert().values(name=name, created_at=now))
                model_id = conn.execute(
                    select(t.models.c.id).where(t.models.c.name == name)
                ).scalar_one()
            top = conn.execute(
                select(func.max(t.model_versions.c.version)).where(
                    t.model_versions.c.model_id == model_id
                )
            ).scalar()
            version = (top or 0) + 1
            conn.execute(
                t.model_versions.insert().values(
                    model_id=model_id,
                    version=version,
                    run_id=run_id,
                    flavor=flavor,
                    artifact_sha256=artifact_sha256,
                    artifact_size=artifact_size,
                    signature=dumps(signature.to_json()),
                    input_example=dumps(input_example),
                    flavor_details=dumps(dict(flavor_details)),
                    description=description,
                    created_at=now,
                    created_by=created_by,
                )
            )
            version_id = conn.execute(
                select(t.model_versions.c.id).where(
                    t.model_versions.c.model_id == model_id,
                    t.model_versions.c.version == version,
                )
            ).scalar_one()
            if key is not None:
                conn.execute(
                    t.model_version_keys.insert().values(key=key, model_version_id=version_id)
                )
            if forms is not None:
                conn.execute(
                    t.model_version_forms.insert().values(
                        model_version_id=version_id,
                        record=dumps(dict(forms)),
                        created_at=now,
                        created_by=created_by,
                    )
                )
        return self.get_version(name, version)

    @staticmethod
    def _keyed(conn: Any, name: str, key: str) -> int | None:
        """The version of ``name`` registered with ``key``; another model's key is a
        conflict (keys are random: a client reusing one is broken)."""
        mv, keys = t.model_versions, t.model_version_keys
        row = conn.execute(
            select(t.models.c.name, mv.c.version)
            .join(mv, mv.c.model_id == t.models.c.id)
            .join(keys, keys.c.model_version_id == mv.c.id)
            .where(keys.c.key == key)
        ).first()
        if row is None:
            return None
        if row[0] != name:
            raise ConflictError(f"registration key {key!r} was used for model {row[0]!r}")
        return int(row[1])

    def set_forms(
        self, name: str, version: int, forms: Mapping[str, Any], *, created_by: str
    ) -> ModelVersion:
        """Add or replace the predictor forms record of an existing version."""
        mv = t.model_versions
        with self.db.write() as conn:
            self.db.lock(conn, f"model:{name}")  # two compiles of one version: one at a time
            version_id = conn.execute(
                select(mv.c.id)
                .join(t.models, t.models.c.id == mv.c.model_id)
                .where(t.models.c.name == name, mv.c.version == version)
            ).scalar()
            if version_id is None:
                raise ModelVersionNotFoundError(f"model {name!r} has no version {version}")
            forms_table = t.model_version_forms
            conn.execute(forms_table.delete().where(forms_table.c.model_version_id == version_id))
            conn.execute(
                forms_table.insert().values(
                    model_version_id=version_id,
                    record=dumps(dict(forms)),
                    created_at=time.time(),
                    created_by=created_by,
                )
            )
        return self.get_version(name, version)

    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        """Version ``version`` of ``name``, or its latest version when ``version`` is None."""
        query = _versions_query().where(t.models.c.name == name)
        if version is None:
            query = query.order_by(t.model_versions.c.version.desc()).limit(1)
        else:
            query = query.where(t.model_versions.c.version == version)
        with self.db.read() as conn:
            row = conn.execute(query).first()
            if row is None:
                exists = conn.execute(select(t.models.c.id).where(t.models.c.name == name)).first()
        if row is None:
            if exists is None:
                raise ModelNotFoundError(f"no model named {name!r}")
            raise ModelVersionNotFoundError(f"model {name!r} has no version {version}")
        return _version(row)

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self.db.read() as conn:
            rows = conn.execute(
                _versions_query()
                .where(t.models.c.name == name)
                .order_by(t.model_versions.c.version)
            ).all()
        if not rows:
            self.get_version(name)  # raises the right not-found error
        return [_version(r) for r in rows]

    def list_models(self) -> list[Model]:
        mv = t.model_versions
        with self.db.read() as conn:
            rows = conn.execute(
                select(
                    t.models.c.name,
                    t.models.c.created_at,
                    func.max(mv.c.version),
                    func.count(mv.c.id),
                )
                .outerjoin(mv, mv.c.model_id == t.models.c.id)
                .group_by(t.models.c.id, t.models.c.name, t.models.c.created_at)
                .order_by(t.models.c.name)
            ).all()
            return [
                Model(
                    name=name,
                    created_at=float(created),
                    latest_version=None if latest is None else int(latest),
                    version_count=int(count),
                )
                for name, created, latest, count in rows
            ]


def _versions_query() -> Any:
    """Versions with their model's name and their forms record (when they have one)."""
    forms = t.model_version_forms
    return (
        select(t.model_versions, t.models.c.name, forms.c.record.label("forms_record"))
        .join(t.models, t.models.c.id == t.model_versions.c.model_id)
        .outerjoin(forms, forms.c.model_version_id == t.model_versions.c.id)
    )


def _version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(
        model=row.name,
        version=int(row.version),
        run_id=row.run_id,
        flavor=row.flavor,
        artifact_sha256=row.artifact_sha256,
        artifact_size=int(row.artifact_size),
        signature=Signature.from_json(loads(row.signature)),
        input_example=loads(row.input_example),
        flavor_details=loads(row.flavor_details),
        created_at=float(row.created_at),
        created_by=row.created_by,
        description=row.description,
        forms=None if row.forms_record is None else loads(row.forms_record),
    )

"""Reference profiles of model versions (``monitoring.profiles``), one per version.

A profile is written once, right after its version is registered: writing the same profile
again (a retried request) changes nothing, and a different one is refused, so what a version
is monitored against cannot be swapped afterwards. Versions registered before profiles
existed, or whose run logged no data, have none.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from modelrail.errors import ConflictError, ModelVersionNotFoundError
from modelrail.monitoring.profiles import ReferenceProfile
from modelrail.store import tables as t
from modelrail.store.db import Database


class ReferenceProfileRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, model: str, version: int) -> ReferenceProfile | None:
        """The profile of version ``version`` of ``model``, None when it has none."""
        p, mv = t.reference_profiles, t.model_versions
        query = (
            select(p.c.record)
            .join(mv, mv.c.id == p.c.model_version_id)
            .join(t.models, t.models.c.id == mv.c.model_id)
            .where(t.models.c.name == model, mv.c.version == version)
        )
        with self.db.read() as conn:
            record = conn.execute(query).scalar()
        if record is None:
            return None
        return ReferenceProfile.from_text(record, f"the reference profile of {model}:{version}")

    def add(self, model: str, version: int, profile: ReferenceProfile, *, created_by: str) -> None:
        """Store the profile of an existing version that has none yet."""
        record = profile.to_text()
        p = t.reference_profiles
        with self.db.write() as conn:
            self.db.lock(conn, f"model:{model}")  # two writers of one profile: one at a time
            version_id = _version_id(conn, model, version)
            held = conn.execute(select(p.c.record).where(p.c.model_version_id == version_id))
            existing = held.scalar()
            if existing is not None:
                if existing == record:
                    return
                raise ConflictError(
                    f"{model}:{version} already has a reference profile, which is kept: a "
                    "version is monitored against what it was registered with"
                )
            conn.execute(
                p.insert().values(
                    model_version_id=version_id,
                    record=record,
                    created_at=time.time(),
                    created_by=created_by,
                )
            )


def _version_id(conn: Any, model: str, version: int) -> int:
    mv = t.model_versions
    found = conn.execute(
        select(mv.c.id)
        .join(t.models, t.models.c.id == mv.c.model_id)
        .where(t.models.c.name == model, mv.c.version == version)
    ).scalar()
    if found is None:
        raise ModelVersionNotFoundError(f"model {model!r} has no version {version}")
    return int(found)

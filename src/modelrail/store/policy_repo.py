"""The shared policy's versions: read the newest, one version or all; append a new one."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from modelrail.entities import PolicyRecord
from modelrail.errors import PolicyNotFoundError
from modelrail.store import tables as t
from modelrail.store.db import Database


class PolicyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def latest_version(self) -> int | None:
        """The newest version's number (one cheap query), None while the store has none."""
        with self.db.read() as conn:
            found = conn.execute(select(func.max(t.policies.c.version))).scalar()
        return None if found is None else int(found)

    def get(self, version: int | None = None) -> PolicyRecord:
        """Version ``version`` (None: the newest)."""
        p = t.policies
        query = select(p)
        if version is None:
            query = query.order_by(p.c.version.desc()).limit(1)
        else:
            query = query.where(p.c.version == version)
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            if version is None:
                raise PolicyNotFoundError("the store holds no shared policy")
            raise PolicyNotFoundError(f"the store holds no policy version {version}")
        return _record(row)

    def history(self) -> list[PolicyRecord]:
        """Every version, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(select(t.policies).order_by(t.policies.c.version)).mappings()
            return [_record(row) for row in rows]

    def append(self, document: str, author: str, reason: str) -> tuple[PolicyRecord, bool]:
        """Store ``document`` as the next version, unless it is the newest one already:
        then that one is returned with False."""
        digest = hashlib.sha256(document.encode()).hexdigest()
        p = t.policies
        with self.db.write() as conn:
            self.db.lock(conn, "modelrail.policies")
            newest = (
                conn.execute(select(p).order_by(p.c.version.desc()).limit(1)).mappings().first()
            )
            if newest is not None and newest["sha256"] == digest:
                return _record(newest), False
            row = {
                "version": 1 if newest is None else int(newest["version"]) + 1,
                "document": document,
                "sha256": digest,
                "author": author,
                "reason": reason,
                "created_at": time.time(),
            }
            conn.execute(p.insert(), row)
        return _record(row), True


def _record(row: Mapping[Any, Any]) -> PolicyRecord:
    return PolicyRecord(
        version=int(row["version"]),
        document=row["document"],
        sha256=row["sha256"],
        author=row["author"],
        reason=row["reason"],
        created_at=float(row["created_at"]),
    )

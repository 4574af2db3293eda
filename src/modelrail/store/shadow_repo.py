"""Shadow-traffic totals: added to by servers, read by ``modelrail shadow report``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from modelrail.store import tables as t
from modelrail.store.db import Database


@dataclass(frozen=True)
class ShadowTotals:
    model: str
    live_environment: str
    live_version: int
    shadow_environment: str
    shadow_version: int
    requests: int
    rows: int
    agreeing_rows: int
    live_seconds: float
    shadow_seconds: float
    first_at: float
    last_at: float

    @property
    def agreement(self) -> float:
        return self.agreeing_rows / self.rows if self.rows else 0.0


class ShadowRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, batches: Sequence[ShadowTotals]) -> None:
        """Add each batch to its running totals (several servers may add at once)."""
        s = t.shadow_results
        key_columns = (
            "model",
            "live_environment",
            "live_version",
            "shadow_environment",
            "shadow_version",
        )
        with self.db.write() as conn:
            for batch in batches:
                self.db.lock(conn, f"shadow:{batch.model}")
                key = {k: getattr(batch, k) for k in key_columns}
                where = [getattr(s.c, k) == v for k, v in key.items()]
                row = conn.execute(select(s).where(*where)).mappings().first()
                if row is None:
                    conn.execute(s.insert(), {**key, **_sums(batch)})
                    continue
                conn.execute(
                    s.update()
                    .where(*where)
                    .values(
                        requests=row["requests"] + batch.requests,
                        rows=row["rows"] + batch.rows,
                        agreeing_rows=row["agreeing_rows"] + batch.agreeing_rows,
                        live_seconds=row["live_seconds"] + batch.live_seconds,
                        shadow_seconds=row["shadow_seconds"] + batch.shadow_seconds,
                        first_at=min(row["first_at"], batch.first_at),
                        last_at=max(row["last_at"], batch.last_at),
                    )
                )

    def totals(self, model: str | None = None) -> list[ShadowTotals]:
        s = t.shadow_results
        query = select(s).order_by(s.c.model, s.c.live_version, s.c.shadow_version)
        if model is not None:
            query = query.where(s.c.model == model)
        with self.db.read() as conn:
            return [ShadowTotals(**dict(r)) for r in conn.execute(query).mappings()]


def _sums(batch: ShadowTotals) -> dict[str, float | int]:
    return {
        "requests": batch.requests,
        "rows": batch.rows,
        "agreeing_rows": batch.agreeing_rows,
        "live_seconds": batch.live_seconds,
        "shadow_seconds": batch.shadow_seconds,
        "first_at": batch.first_at,
        "last_at": batch.last_at,
    }

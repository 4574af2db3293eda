"""Batch run records over a team server's HTTP API: what ``batch.records.BatchRecords``
asks for, so ``batch run``, ``batch resume`` and the heartbeat work unchanged against one.

Every write is safe to retry: a run is created under the id the client chose (a retry finds
its first try), an update sets values (setting them twice changes nothing), and a
conditional update names the heartbeat it expects (a retry after a lost answer finds it
changed and says so, as a lost race would)."""

from __future__ import annotations

from typing import Any

from modelrail.entities import BatchRun
from modelrail.remote.connection import ServerConnection, segment
from modelrail.remote.decode import decode, decode_list
from modelrail.server.payload import to_json

__all__ = ["RemoteBatchRecords"]
# As many records as the server gives in one answer.
_MOST = 10_000


class RemoteBatchRecords:
    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection

    def create(self, run: BatchRun) -> None:
        self.connection.post("/batch-runs", to_json(run), repeatable=True)

    def update(self, run_id: str, **values: Any) -> None:
        path = f"/batch-runs/{segment(run_id)}/update"
        self.connection.post(path, {"values": to_json(values)}, repeatable=True)

    def update_if_unchanged(self, seen: BatchRun, **values: Any) -> bool:
        body = {"values": to_json(values), "if_heartbeat_at": seen.heartbeat_at}
        found = self.connection.post(
            f"/batch-runs/{segment(seen.id)}/update", body, repeatable=True
        )
        return isinstance(found, dict) and found.get("updated") is True

    def get(self, run_id: str) -> BatchRun:
        return decode(BatchRun, self.connection.get(f"/batch-runs/{segment(run_id)}"), "run")

    def recent(
        self,
        *,
        job: str | None = None,
        model: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[BatchRun]:
        query = {"job": job, "model": model, "status": status, "limit": min(limit, _MOST)}
        return decode_list(BatchRun, self.connection.get("/batch-runs", query), "batch runs")

    def running_for_job(self, job: str) -> list[BatchRun]:
        return self.recent(job=job, status="running", limit=_MOST)

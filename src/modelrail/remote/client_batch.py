"""Batch runs and shadow totals through ``RemoteClient``: scored on this machine, recorded on
the server. Mixed into ``RemoteClient`` only."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from modelrail.entities import BatchRun
from modelrail.remote.batch_records import RemoteBatchRecords
from modelrail.remote.connection import ServerConnection
from modelrail.remote.decode import decode_list
from modelrail.server.payload import to_json
from modelrail.store.shadow_repo import ShadowTotals

if TYPE_CHECKING:
    from modelrail.batch.host import BatchHost
    from modelrail.batch.runner import Progress
    from modelrail.batch.spec import JobSpec


class RemoteBatchMethods:
    connection: ServerConnection

    # -- batch runs ----------------------------------------------------------------------

    @functools.cached_property
    def batch_records(self) -> RemoteBatchRecords:
        """Batch runs are scored here and recorded on the server."""
        return RemoteBatchRecords(self.connection)

    def run_batch(
        self,
        spec: JobSpec,
        *,
        job: str | None = None,
        trigger: str = "manual",
        progress: Progress | None = None,
    ) -> BatchRun:
        """As ``Client.run_batch``: the rows are read, scored and written on this machine
        with the version the server names, and the run is recorded on the server."""
        from modelrail.batch.runner import run_batch

        return run_batch(self._as_client(), spec, job=job, trigger=trigger, progress=progress)

    def resume_batch(
        self,
        run_id: str,
        *,
        output: str | None = None,
        query_url: str | None = None,
        progress: Progress | None = None,
    ) -> BatchRun:
        from modelrail.batch.runner import resume_batch

        return resume_batch(
            self._as_client(), run_id, output=output, query_url=query_url, progress=progress
        )

    def batch_runs(
        self,
        *,
        job: str | None = None,
        model: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[BatchRun]:
        return self.batch_records.recent(job=job, model=model, status=status, limit=limit)

    def batch_run(self, run_id: str) -> BatchRun:
        return self.batch_records.get(run_id)

    def _as_client(self) -> BatchHost:
        return cast("BatchHost", self)  # mixed into RemoteClient, which is one

    # -- shadow traffic -------------------------------------------------------------------

    @functools.cached_property
    def shadow_records(self) -> RemoteShadowRecords:
        """Shadowing servers add their totals to the server's store."""
        return RemoteShadowRecords(self.connection)

    def shadow_totals(self, model: str | None = None) -> list[ShadowTotals]:
        return self.shadow_records.totals(model)


class RemoteShadowRecords:
    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection

    def add(self, batches: Sequence[ShadowTotals]) -> None:
        # Not resent when the answer is lost: an addition sums.
        self.connection.post("/shadow", {"totals": to_json(list(batches))})

    def totals(self, model: str | None = None) -> list[ShadowTotals]:
        found = self.connection.get("/shadow", {"model": model})
        return decode_list(ShadowTotals, found, "shadow totals")

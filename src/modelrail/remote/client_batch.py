"""Batch runs, schedules and shadow totals through ``RemoteClient``: scored and run on this
machine, recorded on the server. Mixed into ``RemoteClient`` only."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from modelrail.remote.batch_records import RemoteBatchRecords
from modelrail.remote.connection import ServerConnection
from modelrail.remote.decode import decode_list
from modelrail.remote.schedule_records import RemoteScheduleRecords
from modelrail.server.payload import to_json
from modelrail.store.shadow_repo import ShadowTotals


class RemoteBatchMethods:
    """Where batch runs, schedules and shadow totals are recorded: on the server. The batch
    methods themselves are ``Client``'s (``client_batch.BatchMethods``), which work through
    these."""

    connection: ServerConnection

    # -- batch runs ----------------------------------------------------------------------

    @functools.cached_property
    def batch_records(self) -> RemoteBatchRecords:
        """Batch runs are scored here and recorded on the server."""
        return RemoteBatchRecords(self.connection)

    @functools.cached_property
    def schedule_records(self) -> RemoteScheduleRecords:
        """Schedules, their leases and claimed files are kept on the server."""
        return RemoteScheduleRecords(self.connection)

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

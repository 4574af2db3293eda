"""What batch scoring needs of the client it runs on: a local ``Client`` or a team server's
``RemoteClient`` offers both protocols, so the runner, the scheduler and the schedules
depend on these and not on either client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.batch.records import BatchRecords
    from modelrail.config import Settings
    from modelrail.entities import ModelVersion
    from modelrail.refs import Ref
    from modelrail.store.batch_schedules_repo import BatchScheduleRepository

__all__ = ["BatchHost", "ScheduleHost"]


class BatchHost(Protocol):
    """Runs a batch job: names the version, reads its files, records the run."""

    @property
    def user(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    @property
    def batch_records(self) -> BatchRecords: ...

    def get_model_version(self, reference: str | Ref) -> ModelVersion: ...


class ScheduleHost(BatchHost, Protocol):
    """Also keeps the schedules, their leases and the files their triggers claimed."""

    @property
    def schedule_records(self) -> BatchScheduleRepository: ...

"""What batch scoring needs of the client it runs on: a local ``Client`` or a team server's
``RemoteClient`` offers both protocols, so the runner, the scheduler and the schedules
depend on these and not on either client."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

# At run time too: the team server reads the operations' types (server.schedule_routes).
from modelrail.store.batch_schedules_repo import ScheduleRecord, TriggerFile

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.batch.records import BatchRecords
    from modelrail.config import Settings
    from modelrail.entities import ModelVersion
    from modelrail.policy import PromotionPolicy
    from modelrail.refs import Ref

__all__ = ["BatchHost", "ScheduleHost", "ScheduleRecords"]


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

    @property
    def policy(self) -> PromotionPolicy: ...  # (what a run in an environment logs)

    def get_model_version(self, reference: str | Ref) -> ModelVersion: ...


class ScheduleRecords(Protocol):
    """The schedules, their leases and the files their triggers claimed: the store's table
    (``BatchScheduleRepository``) or a team server's routes."""

    def save(self, record: ScheduleRecord, *, replace: bool = False) -> None: ...

    def get(self, name: str) -> ScheduleRecord | None: ...

    def schedules(self) -> list[ScheduleRecord]: ...

    def delete(self, name: str) -> bool: ...

    def claim_fire(
        self,
        name: str,
        *,
        expected_next: float,
        new_next: float | None,
        owner: str,
        now: float,
        lease_until: float | None,
    ) -> bool: ...

    def acquire(self, name: str, *, owner: str, now: float, lease_until: float) -> bool: ...

    def renew(self, name: str, *, owner: str, lease_until: float) -> bool: ...

    def release(self, name: str, *, owner: str, last_run_id: str | None = None) -> bool: ...

    def known_files(self, schedule: str, fingerprints: Iterable[str]) -> dict[str, TriggerFile]: ...

    def claim_file(
        self,
        schedule: str,
        *,
        path: str,
        fingerprint: str,
        owner: str,
        now: float,
        lease_until: float,
    ) -> int | None: ...

    def reclaim_file(self, file_id: int, *, owner: str, now: float, lease_until: float) -> bool: ...

    def renew_file(self, file_id: int, *, owner: str, lease_until: float) -> bool: ...

    def finish_file(self, file_id: int, *, owner: str, status: str, run_id: str | None) -> bool: ...

    def abandon_file(self, file_id: int, *, owner: str) -> bool: ...

    def files(self, schedule: str, *, limit: int = 1000) -> list[TriggerFile]: ...

    def file_counts(self) -> dict[str, dict[str, int]]: ...


class ScheduleHost(BatchHost, Protocol):
    """Also keeps the schedules, their leases and the files their triggers claimed."""

    @property
    def schedule_records(self) -> ScheduleRecords: ...

"""Batch schedules over a team server's HTTP API: ``batch.host.ScheduleRecords``, so
``batch schedule``, ``batch schedules``, ``batch unschedule`` and the scheduler work unchanged
signed in to a server. Each operation is one ``POST /api/v1/schedule-records/OPERATION``.

Leases and claims are compare-and-set on the server, so an operation whose answer is lost is
not sent again (a second try could find its own first try and say "taken"): the scheduler
treats a failed operation as it treats a lost race, and tries at its next tick."""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any

from modelrail.batch.host import ScheduleRecords
from modelrail.remote.connection import ServerConnection
from modelrail.remote.decode import decode
from modelrail.server.payload import to_json
from modelrail.store.batch_schedules_repo import ScheduleRecord, TriggerFile

__all__ = ["RemoteScheduleRecords"]
# Reads are safe to send again.
_REPEATABLE = frozenset({"get", "schedules", "files", "file_counts", "known_files"})


class RemoteScheduleRecords:
    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection

    def save(self, record: ScheduleRecord, *, replace: bool = False) -> None:
        self._call("save", record=record, replace=replace)

    def get(self, name: str) -> ScheduleRecord | None:
        found: ScheduleRecord | None = self._call("get", name=name)
        return found

    def schedules(self) -> list[ScheduleRecord]:
        found: list[ScheduleRecord] = self._call("schedules")
        return found

    def delete(self, name: str) -> bool:
        return bool(self._call("delete", name=name))

    def claim_fire(
        self,
        name: str,
        *,
        expected_next: float,
        new_next: float | None,
        owner: str,
        now: float,
        lease_until: float | None,
    ) -> bool:
        return bool(
            self._call(
                "claim_fire",
                name=name,
                expected_next=expected_next,
                new_next=new_next,
                owner=owner,
                now=now,
                lease_until=lease_until,
            )
        )

    def acquire(self, name: str, *, owner: str, now: float, lease_until: float) -> bool:
        return bool(self._call("acquire", name=name, owner=owner, now=now, lease_until=lease_until))

    def renew(self, name: str, *, owner: str, lease_until: float) -> bool:
        return bool(self._call("renew", name=name, owner=owner, lease_until=lease_until))

    def release(self, name: str, *, owner: str, last_run_id: str | None = None) -> bool:
        return bool(self._call("release", name=name, owner=owner, last_run_id=last_run_id))

    def known_files(self, schedule: str, fingerprints: Iterable[str]) -> dict[str, TriggerFile]:
        found: dict[str, TriggerFile] = self._call(
            "known_files", schedule=schedule, fingerprints=list(fingerprints)
        )
        return found

    def claim_file(
        self,
        schedule: str,
        *,
        path: str,
        fingerprint: str,
        owner: str,
        now: float,
        lease_until: float,
    ) -> int | None:
        found: int | None = self._call(
            "claim_file",
            schedule=schedule,
            path=path,
            fingerprint=fingerprint,
            owner=owner,
            now=now,
            lease_until=lease_until,
        )
        return found

    def reclaim_file(self, file_id: int, *, owner: str, now: float, lease_until: float) -> bool:
        return bool(
            self._call(
                "reclaim_file", file_id=file_id, owner=owner, now=now, lease_until=lease_until
            )
        )

    def renew_file(self, file_id: int, *, owner: str, lease_until: float) -> bool:
        return bool(self._call("renew_file", file_id=file_id, owner=owner, lease_until=lease_until))

    def finish_file(self, file_id: int, *, owner: str, status: str, run_id: str | None) -> bool:
        return bool(
            self._call("finish_file", file_id=file_id, owner=owner, status=status, run_id=run_id)
        )

    def abandon_file(self, file_id: int, *, owner: str) -> bool:
        return bool(self._call("abandon_file", file_id=file_id, owner=owner))

    def files(self, schedule: str, *, limit: int = 1000) -> list[TriggerFile]:
        found: list[TriggerFile] = self._call("files", schedule=schedule, limit=limit)
        return found

    def file_counts(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = self._call("file_counts")
        return found

    def _call(self, operation: str, **args: Any) -> Any:
        answer = self.connection.post(
            f"/schedule-records/{operation}",
            {"args": to_json(args)},
            repeatable=operation in _REPEATABLE,
        )
        result = answer.get("result") if isinstance(answer, dict) else None
        kind = typing.get_type_hints(getattr(ScheduleRecords, operation))["return"]
        return None if kind is type(None) else decode(kind, result, operation)

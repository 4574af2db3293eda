"""Where batch runs are recorded, and what of a job's spec a record may keep.

``BatchRecords`` is what the runner, the heartbeat and the scheduler need of the run
records: the store's repository locally, the team server's routes on a remote client.

A record is read by everyone who may read the store, so it never keeps a password: the
database URLs of a spec (``output``, ``query_url``) are kept with the password hidden.
Resuming such a run needs the URL again, given by whoever resumes it (``with_secrets``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from modelrail.batch.spec import JobSpec
from modelrail.entities import BatchRun
from modelrail.errors import BatchRunStateError
from modelrail.urls import hide_password, hides_password


class BatchRecords(Protocol):
    def create(self, run: BatchRun) -> None: ...

    def update(self, run_id: str, **values: Any) -> None: ...

    def update_if_unchanged(self, seen: BatchRun, **values: Any) -> bool: ...

    def get(self, run_id: str) -> BatchRun: ...

    def recent(
        self,
        *,
        job: str | None = None,
        model: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[BatchRun]: ...

    def running_for_job(self, job: str) -> list[BatchRun]: ...


def for_the_record(spec: JobSpec) -> JobSpec:
    """``spec`` as a run record keeps it: no password in its URLs."""
    query_url = None if spec.query_url is None else hide_password(spec.query_url)
    return replace(spec, output=hide_password(spec.output), query_url=query_url)


def with_secrets(
    recorded: JobSpec, run_id: str, *, output: str | None, query_url: str | None
) -> JobSpec:
    """The spec to resume a run with: its recorded spec, with each URL whose password the
    record hides given again (``output``, ``query_url``). A URL given must be the recorded
    one (the run resumes where it started), its password apart."""
    given = {"output": output, "query_url": query_url}
    values: dict[str, Any] = {}
    for name, again in given.items():
        kept = getattr(recorded, name)
        if again is None:
            if kept is not None and hides_password(kept):
                raise BatchRunStateError(
                    f"batch run {run_id[:12]} writes to {kept}: the record keeps no password, "
                    f"so give the URL again with {{{name}}} (or keep the password out of URLs: "
                    "PGPASSWORD or ~/.pgpass for PostgreSQL)",
                    params=(name,),
                )
            continue
        if kept is None or hide_password(again) != hide_password(kept):
            raise BatchRunStateError(
                f"{{{name}}} {hide_password(again)} is not where batch run {run_id[:12]} "
                f"started ({kept}): a run resumes where it started",
                params=(name,),
            )
        values[name] = again
    return replace(recorded, **values) if values else recorded

"""The team server's batch run records: what ``batch run`` and ``batch resume`` write as a
run goes, and what ``batch history`` and ``batch show`` read.

Reading needs ``read``; writing needs ``log``. A run is recorded as the signed-in user's,
whatever the body says, and its job's URLs are kept with their passwords hidden, even if a
client sent them. Any ``log`` holder may update a record (a colleague resumes or supersedes a
dead run); what may change is the state of the run, never what it was started as.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelrail.batch.records import for_the_record
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.entities import BatchRun, User
from modelrail.errors import (
    BatchRunNotFoundError,
    ConflictError,
    InvalidRequestError,
    ModelrailError,
)
from modelrail.permissions import require
from modelrail.remote.decode import decode_body
from modelrail.server import payload
from modelrail.server.artifact_routes import SignedIn
from modelrail.urls import hide_password

RUN_FIELDS = tuple(f.name for f in dataclasses.fields(BatchRun))
# What a run's updates may change: its state, not what it was started as.
UPDATABLE = frozenset(
    {
        "model",
        "version",
        "status",
        "input_fingerprint",
        "input_description",
        "output",
        "rows_read",
        "rows_written",
        "rows_rejected",
        "checkpoint",
        "host",
        "pid",
        "heartbeat_at",
        "finished_at",
        "error",
        "profile",
    }
)
STATUSES = ("running", "succeeded", "failed")
MAX_PAGE = 10_000
MAX_FIELD = 1 << 20


def batch_routes(client: Client, signed_in: SignedIn, api: str) -> list[Route]:
    async def as_(request: Request, action: str) -> User:
        user = await signed_in(request)
        require(user, action)
        return user

    async def runs(request: Request) -> Response:
        await as_(request, "read")
        status = payload.query_text(request, "status")
        if status is not None and status not in STATUSES:
            raise InvalidRequestError(
                f"'status' must be one of {', '.join(STATUSES)}", field="status"
            )
        limit = _limit(payload.query_text(request, "limit"))
        found = await run_in_threadpool(
            lambda: client.batch_runs(
                job=payload.query_text(request, "job"),
                model=payload.query_text(request, "model"),
                status=status,
                limit=limit,
            )
        )
        return payload.answer(found)

    async def one_run(request: Request) -> Response:
        await as_(request, "read")
        run_id = payload.checked_text("id", request.path_params["id"])
        return payload.answer(await run_in_threadpool(client.batch_run, run_id))

    async def create(request: Request) -> Response:
        user = await as_(request, "log")
        body = await payload.read_object(request, RUN_FIELDS)
        run = _checked(decode_body(BatchRun, body, "body"))
        run = dataclasses.replace(
            run, user=user.name, spec=_hidden(run.spec), output=hide_password(run.output)
        )

        def write() -> BatchRun:
            try:
                known = client.batch_records.get(run.id)
            except BatchRunNotFoundError:
                client.batch_records.create(run)
                return run
            # A retry whose first try was written: the same run, by the same user.
            if known.user != user.name or known.started_at != run.started_at:
                raise ConflictError(f"batch run {run.id[:12]} exists already")
            return known

        return payload.answer(await run_in_threadpool(write))

    async def update(request: Request) -> Response:
        await as_(request, "log")
        body = await payload.read_object(request, ("values", "if_heartbeat_at"))
        run_id = payload.checked_text("id", request.path_params["id"])
        values = body.get("values")
        if not isinstance(values, dict) or not values:
            raise InvalidRequestError("'values' must be an object of fields", field="values")
        unknown = sorted(set(values) - UPDATABLE)
        if unknown:
            raise InvalidRequestError(
                f"{unknown[0]!r} cannot be changed: a run's updates change its state "
                f"({', '.join(sorted(UPDATABLE))})",
                field="values",
            )
        seen_beat = body.get("if_heartbeat_at")
        if seen_beat is not None and (
            not isinstance(seen_beat, int | float) or isinstance(seen_beat, bool)
        ):
            raise InvalidRequestError("'if_heartbeat_at' must be a number", field="if_heartbeat_at")

        def write() -> dict[str, Any]:
            records = client.batch_records
            known = records.get(run_id)
            merged = {**payload.to_json(known), **values}
            changed = _checked(decode_body(BatchRun, merged, "values"))
            fields = {name: getattr(changed, name) for name in values}
            if "output" in fields:
                fields["output"] = hide_password(fields["output"])
            if seen_beat is None:
                records.update(known.id, **fields)
                return {"updated": True}
            seen = dataclasses.replace(known, heartbeat_at=float(seen_beat))
            return {"updated": records.update_if_unchanged(seen, **fields)}

        return payload.answer(await run_in_threadpool(write))

    return [
        Route(f"{api}/batch-runs", runs, methods=["GET"]),
        Route(f"{api}/batch-runs", create, methods=["POST"]),
        Route(f"{api}/batch-runs/{{id}}", one_run, methods=["GET"]),
        Route(f"{api}/batch-runs/{{id}}/update", update, methods=["POST"]),
    ]


def _checked(run: BatchRun) -> BatchRun:
    """Refuse text the store cannot hold and a status that is none of the three."""
    for field in dataclasses.fields(run):
        value = getattr(run, field.name)
        if isinstance(value, str):
            payload.checked_text(field.name, value, MAX_FIELD)
    if run.status not in STATUSES:
        raise InvalidRequestError(f"'status' must be one of {', '.join(STATUSES)}", field="status")
    return run


def _hidden(spec: str) -> str:
    try:
        return for_the_record(JobSpec.from_json(spec)).to_json()
    except (ModelrailError, ValueError, TypeError):
        raise InvalidRequestError("'spec' is not a batch job's spec", field="spec") from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_PAGE:
        raise InvalidRequestError(f"'limit' must be 1-{MAX_PAGE:,}", field="limit")
    return int(raw)

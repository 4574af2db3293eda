"""The team server's batch schedules: what ``batch schedule``, ``batch schedules``,
``batch unschedule`` and the scheduler read and write through ``ScheduleRecords``.

``POST /api/v1/schedule-records/OPERATION`` ``{"args": {...}}`` runs one of the protocol's
operations on the store, its arguments checked against the operation's signature (a wrong
name or type is a 422 naming it) and its answer in JSON. Listing needs ``read``; everything
else ``log`` (a member, or the service account a scheduler signs in as). A schedule is saved
as the signed-in user's, and a schedule on a server keeps no password: a job whose database
URLs hold one is refused (the scheduler's host supplies it, PGPASSWORD or ~/.pgpass), and
listings show URLs with any password hidden all the same.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelrail.batch.host import ScheduleRecords
from modelrail.batch.records import for_the_record
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.entities import User
from modelrail.errors import InvalidRequestError, ModelrailError
from modelrail.permissions import require
from modelrail.remote.decode import decode_body
from modelrail.server import payload
from modelrail.server.artifact_routes import SignedIn
from modelrail.store.batch_schedules_repo import ScheduleRecord

READING = frozenset({"get", "schedules", "files", "file_counts"})
OPERATIONS = frozenset(
    name for name in dir(ScheduleRecords) if not name.startswith("_") and name != "renewing"
)


def schedule_routes(client: Client, signed_in: SignedIn, api: str) -> list[Route]:
    async def operate(request: Request) -> Response:
        user = await signed_in(request)
        name = request.path_params["operation"]
        if name not in OPERATIONS:
            raise InvalidRequestError(
                f"no schedule operation {name!r}: one of {', '.join(sorted(OPERATIONS))}",
                field="operation",
                status=404,
            )
        require(user, "read" if name in READING else "log")
        body = await payload.read_object(request, ("args",))
        records = client.schedule_records
        method: Callable[..., Any] = getattr(records, name)
        args = _arguments(getattr(ScheduleRecords, name), body.get("args") or {})
        if name == "save":
            args["record"] = _as_saved(args["record"], user)
        found = await run_in_threadpool(lambda: method(**args))
        if name in ("get", "schedules"):
            found = _shown(found)
        return payload.answer({"result": found})

    return [Route(f"{api}/schedule-records/{{operation}}", operate, methods=["POST"])]


def _arguments(operation: Callable[..., Any], given: Any) -> dict[str, Any]:
    """``given`` as keyword arguments of ``operation``, each decoded to its annotated type."""
    if not isinstance(given, dict):
        raise InvalidRequestError("'args' must be an object", field="args")
    hints = typing.get_type_hints(operation)
    parameters = inspect.signature(operation).parameters
    known = [p for p in parameters if p != "self"]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise InvalidRequestError(
            f"unknown argument {unknown[0]!r}: the arguments are {', '.join(known)}",
            field=unknown[0],
        )
    args: dict[str, Any] = {}
    for name in known:
        if name not in given:
            if parameters[name].default is inspect.Parameter.empty:
                raise InvalidRequestError(f"{name!r} is required", field=name)
            continue
        kind = hints[name]
        if typing.get_origin(kind) is not None and "Iterable" in str(kind):
            kind = list[str]  # known_files' fingerprints
        value = decode_body(kind, given[name], name)
        for text in _texts(value):
            payload.checked_text(name, text)
        args[name] = value
    return args


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [v for v in vars(value).values() if isinstance(v, str)]
    return []


def _as_saved(record: ScheduleRecord, user: User) -> ScheduleRecord:
    try:
        spec = JobSpec.from_json(record.spec)
    except (ModelrailError, ValueError, TypeError):
        raise InvalidRequestError("'spec' is not a batch job's spec", field="spec") from None
    if for_the_record(spec) != spec:
        raise InvalidRequestError(
            "a schedule on a team server keeps no password: give its database URLs without "
            "one, and let the scheduler's host supply it (PGPASSWORD, ~/.pgpass)",
            field="spec",
        )
    return dataclasses.replace(record, created_by=user.name)


def _shown(found: Any) -> Any:
    """Schedules as listed: any password in their URLs hidden."""
    if isinstance(found, list):
        return [_shown(item) for item in found]
    if isinstance(found, ScheduleRecord):
        spec = for_the_record(JobSpec.from_json(found.spec))
        return dataclasses.replace(found, spec=spec.to_json())
    return found

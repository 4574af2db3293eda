"""The team server's reference-profile routes (``monitoring.profiles``).

``GET /api/v1/versions/{reference}/reference-profile`` answers ``{"profile": ...}`` (null for
a version without one) and needs ``read``. ``POST`` to the same path with ``{"profile": ...}``
records the profile a client computed when it registered the version; it needs ``log``, as
registering does, and is kept once: the same profile again changes nothing, another is
refused (409). A malformed document is refused (422) naming the field at fault.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelrail.client import Client
from modelrail.monitoring.profiles import ReferenceProfile
from modelrail.permissions import require
from modelrail.server import payload
from modelrail.server.artifact_routes import SignedIn


def profile_routes(client: Client, signed_in: SignedIn, api: str) -> list[Route]:
    async def read(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        reference = payload.checked_text("reference", request.path_params["reference"])
        found = await run_in_threadpool(client.reference_profile, reference)
        return payload.answer({"profile": None if found is None else found.to_json()})

    async def record(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "log")
        reference = payload.checked_text("reference", request.path_params["reference"])
        body = await payload.read_object(request, ("profile",))
        profile = ReferenceProfile.from_json(body.get("profile"), "'profile'")

        def write() -> None:
            client.record_reference_profile(reference, profile, actor=user.name)

        await run_in_threadpool(write)
        return payload.answer({"recorded": reference})

    path = f"{api}/versions/{{reference}}/reference-profile"
    return [Route(path, read, methods=["GET"]), Route(path, record, methods=["POST"])]

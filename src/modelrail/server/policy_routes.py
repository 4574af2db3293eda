"""The team server's policy routes: the policy in force, its versions, and applying one.

``GET /api/v1/policy`` answers the policy that judges promotions on this server, in
canonical TOML, with its stored version (null while the store holds none and the server's
own modelrail.toml governs). Reading needs ``read``; ``POST /api/v1/policy`` needs ``admin``,
and the applied version names the signed-in admin as its author.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelrail.client import Client
from modelrail.errors import ConfigError, InvalidRequestError
from modelrail.permissions import require
from modelrail.policy_document import canonical
from modelrail.server import payload
from modelrail.server.artifact_routes import SignedIn

# A policy of many environments is longer than the usual text field allows.
MAX_DOCUMENT = 256 * 1024


def policy_routes(client: Client, signed_in: SignedIn, api: str) -> list[Route]:
    async def in_force(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")

        def read() -> dict[str, Any]:
            policy, version = client.policy_in_force()
            record = None if version is None else client.policy_record(version)
            return {"version": version, "document": canonical(policy), "record": record}

        return payload.answer(await run_in_threadpool(read))

    async def versions(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        return payload.answer(await run_in_threadpool(client.policy_history))

    async def one_version(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        version = payload.path_id("version", request.path_params["version"])
        return payload.answer(await run_in_threadpool(client.policy_record, version))

    async def apply(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "admin")
        body = await payload.read_object(request, ("document", "reason"))
        document = payload.text(body, "document", required=True, max_length=MAX_DOCUMENT)
        reason = payload.text(body, "reason")

        def write() -> dict[str, Any]:
            try:
                record, created = client.apply_policy(
                    document, source="the policy sent", reason=reason, actor=user.name
                )
            except ConfigError as exc:  # the document's fault, not the server's
                raise InvalidRequestError(str(exc), field="document") from None
            return {"record": record, "created": created}

        return payload.answer(await run_in_threadpool(write))

    return [
        Route(f"{api}/policy", in_force, methods=["GET"]),
        Route(f"{api}/policy", apply, methods=["POST"]),
        Route(f"{api}/policy/versions", versions, methods=["GET"]),
        Route(f"{api}/policy/versions/{{version}}", one_version, methods=["GET"]),
    ]

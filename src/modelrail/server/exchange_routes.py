"""The team server's routes for moving versions between stores.

``GET /api/v1/store-id``, ``/imports`` and ``/imported-history?model=NAME`` need ``read``:
with them and the ordinary read routes a client writes a bundle of the server's versions.
``POST /api/v1/imports`` with ``{"sha256", "size", "name"}`` imports a bundle uploaded first
as an artifact (``PUT /api/v1/artifacts/...``); it writes runs and versions with the
authors and times of the store they came from, so it needs ``admin``. The server checks
the whole bundle again and imports it as ``Client.import_bundle`` does locally, the
history naming the signed-in admin as the importer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelrail.client import Client
from modelrail.errors import ArtifactNotFoundError
from modelrail.permissions import require
from modelrail.server import payload
from modelrail.server.artifact_routes import SignedIn


def exchange_routes(
    client: Client, signed_in: SignedIn, api: str, poke: Callable[[], None]
) -> list[Route]:
    """``poke``: tell clients waiting on the history that it grew."""

    def reading(read: Callable[[Request], object]) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            user = await signed_in(request)
            require(user, "read")
            return payload.answer(await run_in_threadpool(read, request))

        return route

    async def import_bundle(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "admin")
        body = await payload.read_object(request, ("sha256", "size", "name"))
        sha256 = payload.sha256_text("sha256", payload.text(body, "sha256", required=True))
        name = payload.text(body, "name", required=True)

        def work() -> object:
            handle = client.artifacts.open_verified(sha256, label=f"bundle {name}")
            if handle is None:
                raise ArtifactNotFoundError(
                    f"bundle {name}: no file {sha256[:12]}... was uploaded: upload it first"
                )
            handle.close()  # checked whole; the import reads it as a zip, checking again
            try:
                return client.import_bundle(
                    client.artifacts.path_for(sha256), name=name, actor=user.name
                )
            finally:
                poke()

        return payload.answer(await run_in_threadpool(work))

    return [
        Route(f"{api}/store-id", reading(lambda r: client.store_id()), methods=["GET"]),
        Route(f"{api}/imports", reading(lambda r: client.imports()), methods=["GET"]),
        Route(
            f"{api}/imported-history",
            reading(lambda r: client.imported_history(payload.query_text(r, "model"))),
            methods=["GET"],
        ),
        Route(f"{api}/imports", import_bundle, methods=["POST"]),
    ]

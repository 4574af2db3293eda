"""The team server's shadow-traffic totals: shadowing ``modelrail serve`` processes add to
them (``log``), ``modelrail shadow report`` reads them (``read``).

An addition is not safe to repeat (it sums), so clients do not resend one whose answer was
lost: at worst a few seconds of one server's shadow counts are missing."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelrail.client import Client
from modelrail.errors import InvalidRequestError
from modelrail.permissions import require
from modelrail.remote.decode import decode_body
from modelrail.server import payload
from modelrail.server.artifact_routes import SignedIn
from modelrail.store.shadow_repo import ShadowTotals

MAX_BATCHES = 1_000


def shadow_routes(client: Client, signed_in: SignedIn, api: str) -> list[Route]:
    async def totals(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        model = payload.query_text(request, "model")
        return payload.answer(await run_in_threadpool(client.shadow_totals, model))

    async def add(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "log")
        body = await payload.read_object(request, ("totals",))
        batches = decode_body(list[ShadowTotals], body.get("totals"), "totals")
        if len(batches) > MAX_BATCHES:
            raise InvalidRequestError(f"at most {MAX_BATCHES} totals a request", field="totals")
        for batch in batches:
            for name in ("model", "live_environment", "shadow_environment"):
                payload.checked_text(name, getattr(batch, name))
            counts = (batch.requests, batch.rows, batch.agreeing_rows)
            if min(counts) < 0 or batch.agreeing_rows > batch.rows:
                raise InvalidRequestError(
                    "counts must be 0 or more, agreeing rows at most the rows", field="totals"
                )
        await run_in_threadpool(client.shadow_records.add, batches)
        return payload.answer({"added": len(batches)})

    return [
        Route(f"{api}/shadow", totals, methods=["GET"]),
        Route(f"{api}/shadow", add, methods=["POST"]),
    ]

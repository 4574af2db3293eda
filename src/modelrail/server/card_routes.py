"""The team server's model-card routes: the owner's free-text sections of a card.

``GET /api/v1/cards/{model}/sections?version=N`` answers the sections a card of that version
shows (without ``version``: the model's own), ``GET /api/v1/cards/{model}/history`` every
edit (``?section=TITLE``: of one section); both need ``read``. ``POST
/api/v1/cards/{target}/sections`` with ``{"section", "text"}`` writes one (``target``:
``churn`` for every version, ``churn:7`` for one) and needs ``log``, as registering a version
does; the edit names the signed-in user. The card itself is built by the client from these
and the version, run and history routes (``portability.card``).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelrail.client import Client
from modelrail.client_card import MAX_TEXT
from modelrail.permissions import require
from modelrail.server import payload
from modelrail.server.artifact_routes import SignedIn


def card_routes(client: Client, signed_in: SignedIn, api: str) -> list[Route]:
    async def sections(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        model = payload.checked_text("model", request.path_params["model"])
        raw = payload.query_text(request, "version")
        version = None if raw is None else payload.path_id("version", raw)
        return payload.answer(await run_in_threadpool(client.card_sections, model, version))

    async def history(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        model = payload.checked_text("model", request.path_params["model"])
        section = payload.query_text(request, "section")
        return payload.answer(await run_in_threadpool(client.card_section_history, model, section))

    async def edit(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "log")
        target = payload.checked_text("target", request.path_params["target"])
        body = await payload.read_object(request, ("section", "text"))
        section = payload.text(body, "section", required=True)
        text = payload.text(body, "text", required=True, max_length=MAX_TEXT)

        def write() -> object:
            return client.edit_card_section(target, section, text, actor=user.name)

        return payload.answer(await run_in_threadpool(write))

    return [
        Route(f"{api}/cards/{{model}}/sections", sections, methods=["GET"]),
        Route(f"{api}/cards/{{model}}/history", history, methods=["GET"]),
        Route(f"{api}/cards/{{target}}/sections", edit, methods=["POST"]),
    ]

"""The bare ASGI ceiling: read the request body, answer a constant JSON. Run on the same
uvicorn as ``modelrail serve`` (.venv's, uvloop + httptools, no access log)."""

from __future__ import annotations

from typing import Any

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"17")],
}
_BODY = {"type": "http.response.body", "body": b'{"hello":"world"}'}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send(_START)
    await send(_BODY)

"""Reading request bodies and writing answers for the prediction server's ASGI app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from modelrail.errors import InvalidRequestError
from modelrail.serving.input_spec import InputSpec
from modelrail.serving.inputs import Limits, ModelInput, matrix_from_csv, matrix_from_json

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = tuple[tuple[bytes, bytes], ...]

JSON = (b"content-type", b"application/json")
# curl -d sends form encoding by default; the body is still the JSON the user typed.
_JSON_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"")


class ClientGone(Exception):
    pass


def other_content(
    content_type: bytes, body: bytes, spec: InputSpec, limits: Limits, mlflow: bool
) -> ModelInput:
    """A body whose content type is not exactly ``application/json``."""
    content_type = bytes(content_type.split(b";", 1)[0].strip().lower())
    if mlflow and content_type == b"text/csv":
        return matrix_from_csv(body, spec, limits)
    if content_type in _JSON_TYPES or content_type.endswith(b"+json"):
        return matrix_from_json(body, spec, limits, mlflow=mlflow)
    raise InvalidRequestError(
        f"content type {content_type.decode(errors='replace')!r} is not supported: "
        "send application/json" + (" or text/csv" if mlflow else ""),
        field="content-type",
        status=415,
    )


def is_json(content_type: bytes) -> bool:
    if content_type == b"application/json":
        return True
    content_type = bytes(content_type.split(b";", 1)[0].strip().lower())
    return content_type in _JSON_TYPES or content_type.endswith(b"+json")


async def read_body(receive: Receive, limits: Limits, declared: bytes | None) -> bytes:
    """The request's whole body (``declared``: its content-length header, if any)."""
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise InvalidRequestError(
            f"the body is {int(declared)} bytes; at most {limits.max_body_bytes}",
            field="body",
            status=413,
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise InvalidRequestError(
                f"the body is over {limits.max_body_bytes} bytes", field="body", status=413
            )
        if not message.get("more_body", False):
            return b"".join((*chunks, chunk)) if chunks else chunk
        chunks.append(chunk)


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def error(
    send: Send,
    status: int,
    message: str,
    field: str | None,
    headers: Headers = (),
) -> None:
    body = orjson.dumps({"error": message, "field": field, "status": status})
    await respond(send, status, body, [JSON, *headers])

"""Reading what a request sends, strictly, and writing what the server answers.

A body is a JSON object of known fields; a wrong type, an unknown field, malformed JSON or
text the store could not hold (NUL characters, unpaired surrogates) is refused here with
``InvalidRequestError`` naming the field at fault, before any library code runs, so bad
input never reaches the database as a driver error (a 5xx).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from modelrail.errors import InvalidRequestError

MAX_BODY_BYTES = 1 << 20
MAX_TEXT = 10_000
MAX_ID = 2**31 - 1  # ids and versions are 32-bit integers in PostgreSQL
_SHA256 = re.compile(r"[0-9a-f]{64}")


async def read_object(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """The body as a JSON object holding no field but ``fields``."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise InvalidRequestError(
                f"the body is larger than {MAX_BODY_BYTES:,} bytes", field="body", status=413
            )
    if not data.strip():
        body: Any = {}
    else:
        try:
            body = json.loads(bytes(data))
        except (ValueError, RecursionError):
            raise InvalidRequestError(
                "the body is not valid JSON", field="body", status=400
            ) from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object", field="body", status=400)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise InvalidRequestError(
            f"unknown field {unknown[0]!r}: the fields are {', '.join(fields)}",
            field=unknown[0],
        )
    return body


def text(
    body: Mapping[str, Any], name: str, *, required: bool = False, max_length: int = MAX_TEXT
) -> str:
    """A string field ('' when absent and not required)."""
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequestError(f"{name!r} is required", field=name)
        return ""
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name!r} must be a string", field=name)
    return checked_text(name, value, max_length)


def checked_text(name: str, value: str, max_length: int = MAX_TEXT) -> str:
    """``value`` when the store can hold it: not too long, no NUL, valid UTF-8."""
    if len(value) > max_length:
        raise InvalidRequestError(f"{name!r} has more than {max_length:,} characters", field=name)
    if "\x00" in value:
        raise InvalidRequestError(f"{name!r} must not contain NUL characters", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequestError(f"{name!r} is not valid Unicode text", field=name) from None
    return value


def flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{name!r} must be true or false", field=name)
    return value


def integer(body: Mapping[str, Any], name: str) -> int | None:
    """A positive integer field, or None when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ID:
        raise InvalidRequestError(f"{name!r} must be a positive integer", field=name)
    return value


def path_id(name: str, raw: str) -> int:
    """An id from the URL path: a positive integer."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise InvalidRequestError(f"{name!r} must be a positive integer", field=name)
    return int(raw)


def query_text(request: Request, name: str) -> str | None:
    """A query-string parameter, or None when absent or empty."""
    value = request.query_params.get(name)
    return checked_text(name, value) if value else None


def answer(value: Any, status: int = 200) -> JSONResponse:
    """``value`` (library entities, mappings, lists) as the JSON answer."""
    return JSONResponse(to_json(value), status_code=status)


def to_json(value: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, float):
        if math.isinf(value):
            # JSON has no infinity: a limit that is off (inf) travels as text.
            return "inf" if value > 0 else "-inf"
        return value if math.isfinite(value) else None  # nor NaN
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)


def sha256_text(name: str, value: str) -> str:
    """``value`` when it is an artifact's address: 64 lowercase hexadecimal digits."""
    if not _SHA256.fullmatch(value):
        raise InvalidRequestError(
            f"{name!r} must be 64 lowercase hexadecimal digits (an artifact's sha256)",
            field=name,
        )
    return value

"""JSON encoding of stored values: compact, sorted, and strict about what is stored."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from modelrail.errors import InvalidInputError


def to_jsonable(value: Any, *, what: str) -> Any:
    """Turn numpy scalars, tuples and paths into plain JSON values, or refuse with the culprit."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, what=f"{what}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v, what=f"{what}[{i}]") for i, v in enumerate(value)]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return to_jsonable(item(), what=what)  # numpy scalar
    if hasattr(value, "__fspath__"):
        return str(value)
    raise InvalidInputError(
        f"{what}: cannot store a value of type {type(value).__name__}; "
        "use numbers, strings, booleans, None, or lists/dicts of them"
    )


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        # orjson stops at 64-bit integers; the standard library does not.
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    return orjson.loads(text)

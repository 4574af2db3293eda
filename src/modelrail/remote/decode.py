"""JSON from the team server back into the library's frozen dataclasses.

The server writes entities with ``server.payload.to_json`` (a dataclass as an object of its
fields); this reads them back by the dataclass's own type hints, so a client of a server gets
the same ``ModelVersion``, ``PromotionOutcome`` or ``Run`` a local ``Client`` returns. A value
that does not fit its type is a ``ServerResponseError`` naming the field: a server of another
version, or not a modelrail server at all.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from modelrail.errors import InvalidRequestError, ServerResponseError

__all__ = ["decode", "decode_body", "decode_list"]

T = TypeVar("T")
_SERVER = "is it a modelrail server of this version?"


class _Misfit(Exception):
    """A value that does not fit its type; its text names where and what was expected."""


def decode(kind: type[T], value: Any, where: str = "answer") -> T:
    """``value`` (parsed JSON from a server) as an instance of ``kind`` (a dataclass or a
    typed container such as ``dict[str, str]``)."""
    try:
        decoded: T = _decode(kind, value, where)
    except _Misfit as exc:
        raise ServerResponseError(f"the server's answer {exc}: {_SERVER}") from None
    return decoded


def decode_list(kind: type[T], value: Any, where: str = "answer") -> list[T]:
    return decode(list[kind], value, where)  # type: ignore[valid-type]


def decode_body(kind: type[T], value: Any, field: str) -> T:
    """A request's ``field`` (parsed JSON a client sent) as a ``kind``, or a 422 naming it."""
    try:
        decoded: T = _decode(kind, value, field)
    except _Misfit as exc:
        raise InvalidRequestError(f"the body {exc}", field=field) from None
    return decoded


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(kind: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(kind)
    if hints is None:  # resolved once per class: get_type_hints evaluates every annotation
        hints = _HINTS[kind] = typing.get_type_hints(kind)
    return hints


def _decode(hint: Any, value: Any, where: str) -> Any:
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass(hint, value, where)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return _union(hint, value, where)
    if origin is typing.Literal:
        if value not in get_args(hint):
            raise _unexpected(where, f"one of {get_args(hint)}", value)
        return value
    if origin is tuple or origin is list:
        if not isinstance(value, list):
            raise _unexpected(where, "a list", value)
        args = get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed-length tuple
            if len(args) != len(value):
                raise _unexpected(where, f"{len(args)} items", value)
            return tuple(
                _decode(a, v, f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or origin is getattr(typing, "Mapping", None):
        if not isinstance(value, dict):
            raise _unexpected(where, "an object", value)
        item = get_args(hint)[1] if get_args(hint) else Any
        return {k: _decode(item, v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(hint, value, where)


def _dataclass(kind: type[Any], value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise _unexpected(where, f"an object ({kind.__name__})", value)
    hints = _hints(kind)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(kind):
        if not field.init:
            continue
        if field.name not in value:
            has_default = (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            )
            if has_default:
                continue
            raise _Misfit(f"lacks {where}.{field.name}")
        values[field.name] = _decode(hints[field.name], value[field.name], f"{where}.{field.name}")
    return kind(**values)


def _union(hint: Any, value: Any, where: str) -> Any:
    options = get_args(hint)
    if value is None:
        if type(None) in options:
            return None
        raise _unexpected(where, "a value", value)
    last: _Misfit | None = None
    for option in options:
        if option is type(None):
            continue
        try:
            return _decode(option, value, where)
        except _Misfit as exc:
            last = exc
    assert last is not None
    raise last


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            if value is None:  # JSON has no NaN: the server sends one as null
                return float("nan")
            if value in ("inf", "-inf"):  # nor infinity: the server sends it as text
                return float(value)
            raise _unexpected(where, "a number", value)
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _unexpected(where, "an integer", value)
        return value
    if hint is bool or hint is str:
        if not isinstance(value, hint):
            raise _unexpected(where, hint.__name__, value)
        return value
    return value  # a JSON value typed loosely (JSONValue and friends)


def _unexpected(where: str, wanted: str, value: Any) -> _Misfit:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return _Misfit(f"has {shown} at {where} where {wanted} was expected")

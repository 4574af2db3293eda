"""Request ids: every answer of the prediction server carries one in ``x-request-id``, and a
logged prediction is stored under it, so a caller can send the true outcome back later
(``POST /v1/feedback``).

A caller may choose the id by sending ``x-request-id`` itself (1 to 128 characters among
letters, digits and ``- _ . : / + = @ ~``: UUIDs, ULIDs and the ids proxies add all fit). One
that does not fit is refused with 400 rather than replaced: the caller means to find its
predictions by that id, and a silently different one would lose them.

Otherwise the server makes one: a random prefix drawn once per server process and a counter,
``5f0c9a1e3b7d2c44-1a2b``, unique across processes and restarts without drawing random bytes
per request.
"""

from __future__ import annotations

import itertools
import re
import secrets

__all__ = ["HEADER", "MAX_LENGTH", "RequestIds", "valid_request_id"]

HEADER = b"x-request-id"
MAX_LENGTH = 128
_ALLOWED = re.compile(rb"[A-Za-z0-9_.:/+=@~-]{1,%d}" % MAX_LENGTH)


def valid_request_id(value: bytes) -> bool:
    return _ALLOWED.fullmatch(value) is not None


class RequestIds:
    """Makes the ids of one server process's requests (on its event loop only)."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8).encode() + b"-"
        self._count = itertools.count(1)

    def new(self) -> bytes:
        return b"%s%x" % (self._prefix, next(self._count))

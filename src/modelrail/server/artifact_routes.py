"""The team server's artifact routes: content-addressed upload and download (to be filled)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.routing import Route

from modelrail.client import Client
from modelrail.entities import User

SignedIn = Callable[[Request], Awaitable[User]]


def artifact_routes(client: Client, signed_in: SignedIn, api: str) -> list[Route]:
    """The routes under ``api`` (``/api/v1``) that move artifact bytes."""
    return []

"""The team server: the library over HTTP in front of one store, with real identity.

``build_app`` (``app.py``) makes the ASGI app from a ``Client``; ``auth.py`` signs every
request in with its bearer token and throttles failed sign-ins; ``payload.py`` reads
request bodies and query strings strictly; ``api_errors.py`` is the one place errors
become HTTP statuses. ``modelrail server`` (``cli/server.py``) runs it on uvicorn.
"""

from __future__ import annotations

from modelrail.server.app import build_app
from modelrail.server.auth import FailureThrottle

__all__ = ["FailureThrottle", "build_app"]

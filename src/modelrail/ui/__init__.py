"""The web dashboard: the model tracker, runs, comparisons, the environment board with
promote / approve / rollback, and batch scoring, served by ``modelrail ui``.

``create_app(settings_or_client_factory, token=...)`` returns the ASGI app; templates
and the style sheet ship inside this package, so the pages load nothing from elsewhere.
"""

from __future__ import annotations

from modelrail.ui.app import create_app

__all__ = ["create_app"]

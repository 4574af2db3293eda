"""Opening the store for a command: settings are read here, at the edge."""

from __future__ import annotations

import os

from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.errors import ProjectNotFoundError


def open_client() -> Client:
    """The client for the project around the working directory; no project is an error."""
    settings = load_settings(create=False)
    has_project = (settings.project_dir).is_dir()
    if not has_project and "MODELRAIL_STORE" not in os.environ:
        raise ProjectNotFoundError(
            f"no modelrail project in {settings.project_root} or any folder above it "
            "(looked for a .modelrail/ folder): run 'modelrail init' first, or set MODELRAIL_STORE"
        )
    return Client(settings=settings)

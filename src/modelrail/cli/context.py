"""Opening the store for a command: settings are read here, at the edge."""

from __future__ import annotations

import os
from pathlib import Path

from modelrail.client import Client
from modelrail.config import CONFIG_FILE_NAME, load_settings
from modelrail.errors import ProjectNotFoundError


def open_client() -> Client:
    """The client for the project around the working directory; no project is an error."""
    settings = load_settings(create=False)
    has_project = (settings.project_dir).is_dir()
    if not has_project and "MODELRAIL_STORE" not in os.environ:
        raise ProjectNotFoundError(
            f"no modelrail project in {Path.cwd()} or any folder above it "
            f"(looked for .modelrail/ and {CONFIG_FILE_NAME}): run 'modelrail init' first, "
            "or set MODELRAIL_STORE"
        )
    return Client(settings=settings)

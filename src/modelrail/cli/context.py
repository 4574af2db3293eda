"""Opening the store for a command: settings are read here, at the edge.

A command talks to a team server when one is configured (``MODELRAIL_SERVER``, ``[server] url``
in ``modelrail.toml``, or, outside any local project, the server logged in to last: see
``modelrail.remote.credentials``), else to the local project's store."""

from __future__ import annotations

import os
from typing import cast

from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.errors import ProjectNotFoundError
from modelrail.remote import credentials


def open_client() -> Client:
    """The client for the project around the working directory, or for the team server;
    neither is an error."""
    settings = load_settings(create=False)
    has_project = (settings.project_dir).is_dir() or "MODELRAIL_STORE" in os.environ
    server = credentials.server_for(settings.server_url, has_project)
    if server:
        from modelrail.remote.client import RemoteClient

        # The remote client offers the Client methods a server serves, with the same
        # signatures (tests/remote compares them); the rest raise NotOnServerError.
        return cast(Client, RemoteClient(server, credentials.token_for(server), settings=settings))
    if not has_project:
        raise ProjectNotFoundError(
            f"no modelrail project in {settings.project_root} or any folder above it "
            "(looked for a .modelrail/ folder): run 'modelrail init' first, set "
            "MODELRAIL_STORE, or 'modelrail login' to a team server"
        )
    return Client(settings=settings)

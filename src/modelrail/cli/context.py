"""Opening the store for a command: settings are read here, at the edge.

A command talks to a team server when one is configured (``MODELRAIL_SERVER``, ``[server] url``
in ``modelrail.toml``, or, outside any local project, the server logged in to last: see
``modelrail.remote.credentials``), else to the local project's store."""

from __future__ import annotations

import os
from typing import cast

from modelrail.cli.render import error_console
from modelrail.client import Client
from modelrail.config import Settings, load_settings
from modelrail.errors import ProjectNotFoundError
from modelrail.policy_document import canonical
from modelrail.remote import credentials


def open_client(*, governed: bool = False) -> Client:
    """The client for the project around the working directory, or for the team server;
    neither is an error. ``governed``: the command is judged by the policy, so say when this
    project's modelrail.toml differs from the shared policy that judges instead."""
    client = _open(load_settings(create=False))
    if governed:
        try:
            note_local_policy(client)
        except BaseException:
            client.close()
            raise
    return client


def note_local_policy(client: Client) -> None:
    """Warn on stderr when the store's shared policy is in force and this project's own
    ``[environments]`` says something else (the store's wins; a file cannot loosen it)."""
    if not client.settings.policy_declared:
        return
    policy, version = client.policy_in_force()
    if version is None or canonical(policy) == canonical(client.settings.policy):
        return
    error_console().print(
        f"note: the store's shared policy version {version} is in force, not the "
        "[environments] of this project's modelrail.toml, which differs "
        "(see 'modelrail policy diff modelrail.toml')",
        markup=False,
        highlight=False,
    )


def server_in_effect(settings: Settings) -> str | None:
    """The team server a command would talk to, or None for the local store."""
    has_project = settings.project_dir.is_dir() or "MODELRAIL_STORE" in os.environ
    return credentials.server_for(settings.server_url, has_project)


def _open(settings: Settings) -> Client:
    has_project = settings.project_dir.is_dir() or "MODELRAIL_STORE" in os.environ
    server = server_in_effect(settings)
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

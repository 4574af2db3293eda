"""``modelrail login``, ``logout`` and ``whoami``: signing in to a team server."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, print_json
from modelrail.config import load_settings
from modelrail.errors import CredentialsError
from modelrail.remote import credentials

UrlArgument = Annotated[
    str, typer.Argument(help="The server's address, e.g. https://models.example.org:5050.")
]


def login(
    url: UrlArgument,
    token_stdin: Annotated[
        bool,
        typer.Option("--token-stdin", help="Read the token from standard input (for scripts)."),
    ] = False,
) -> None:
    """Sign in to a team server with your personal API token (from 'modelrail tokens
    create', by an admin); commands outside a local project then talk to that server."""
    from modelrail.remote.client import RemoteClient

    if token_stdin or not sys.stdin.isatty():
        token = sys.stdin.readline().strip()
    else:
        token = typer.prompt("API token", hide_input=True).strip()
    if not token:
        raise CredentialsError("no token given: paste the token 'modelrail tokens create' showed")
    remote = RemoteClient(url, token, settings=load_settings(create=False), patient=False)
    user = remote.whoami()  # the token is kept only once the server accepts it
    path = credentials.remember(remote.store_address, token)
    roles = ", ".join(str(grant) for grant in user.roles) or "no role"
    console().print(
        f"signed in to {remote.store_address} as {user.name} ({roles}); token kept in {path}"
    )


def logout(
    url: Annotated[
        str | None, typer.Argument(help="The server to forget (default: the current one).")
    ] = None,
) -> None:
    """Forget the token of a team server (the server itself keeps it until revoked)."""
    dropped = credentials.forget(url)
    if dropped is None:
        console().print("not signed in to any server")
    else:
        console().print(f"signed out of {dropped}")


def whoami(as_json: JsonOption = False) -> None:
    """Who the team server signs you in as, and your roles (or the local user)."""
    with open_client() as client:
        who = getattr(client, "whoami", None)
        if who is None:  # a local project: the name history rows record
            name, roles, where = client.user, [], client.store_address
        else:
            user = who()
            name, roles, where = user.name, [str(g) for g in user.roles], client.store_address
    if as_json:
        print_json({"user": name, "roles": roles, "store": where})
        return
    console().print(f"{name} at {where}" + (f" ({', '.join(roles)})" if roles else ""))


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)

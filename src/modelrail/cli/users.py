"""``modelrail users`` and ``modelrail tokens``: who may sign in to a team server, with which
roles, and their personal API tokens."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import (
    JsonOption,
    console,
    error_console,
    format_time,
    print_json,
    to_plain,
)
from modelrail.entities import User

users_app = typer.Typer(help="Users of a team server and the roles they hold.")
tokens_app = typer.Typer(help="Personal API tokens: create (shown once), list, revoke.")

NameArgument = Annotated[str, typer.Argument(help="The user's name (e.g. alice or an e-mail).")]
RoleOption = Annotated[
    str, typer.Option("--role", help="viewer, member, approver (per environment) or admin.")
]
EnvOption = Annotated[
    str | None,
    typer.Option("--env", help="Only in this environment (default: every environment)."),
]


def _roles(user: User) -> str:
    shown = ", ".join(str(grant) for grant in user.roles) or "no role"
    return f"{shown} (disabled)" if user.disabled else shown


@users_app.command("add")
def add(
    name: NameArgument,
    role: Annotated[
        list[str],
        typer.Option("--role", help="viewer, member, approver or admin; repeat for several roles."),
    ],
    env: EnvOption = None,
) -> None:
    """Add a user holding one or more roles (in every environment, or only in --env)."""
    with open_client() as client:
        user = client.add_user(name, [f"{r}@{env}" if env else r for r in role])
    console().print(f"added user {user.name}: {_roles(user)}")


@users_app.command("list")
def list_users(as_json: JsonOption = False) -> None:
    """List every user with their roles, disabled users included."""
    with open_client() as client:
        users = client.users()
    if as_json:
        print_json([{**to_plain(user), "disabled": user.disabled} for user in users])
        return
    table = Table(title="users", title_justify="left")
    for column in ("user", "roles", "created", "by", "disabled"):
        table.add_column(column)
    for user in users:
        table.add_row(
            user.name,
            ", ".join(str(grant) for grant in user.roles) or "-",
            format_time(user.created_at),
            user.created_by,
            f"{format_time(user.disabled_at)} by {user.disabled_by}" if user.disabled else "-",
        )
    console().print(table)


@users_app.command("grant")
def grant(name: NameArgument, role: RoleOption, env: EnvOption = None) -> None:
    """Give a user a role, in every environment or only in --env."""
    with open_client() as client:
        user = client.grant_role(name, role, env)
    console().print(f"{user.name} holds {_roles(user)}")


@users_app.command("revoke-role")
def revoke_role(name: NameArgument, role: RoleOption, env: EnvOption = None) -> None:
    """Take back a role a user holds (in --env, or the every-environment one)."""
    with open_client() as client:
        user = client.revoke_role(name, role, env)
    console().print(f"{user.name} holds {_roles(user)}")


@users_app.command("disable")
def disable(name: NameArgument) -> None:
    """Disable a user: none of their tokens signs in from the next request on."""
    with open_client() as client:
        user = client.disable_user(name)
    console().print(f"disabled user {user.name} (their tokens no longer sign in)")


@tokens_app.command("create")
def create(
    user: Annotated[str, typer.Option("--user", help="Whose token it is.")],
    label: Annotated[str, typer.Option("--label", help="What it is for, e.g. laptop or ci.")] = "",
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", help="Expire after N days (default: never).")
    ] = None,
) -> None:
    """Create a personal API token and print its secret, once: only its hash is kept.

    The secret alone goes to standard output (for scripts), the rest to standard error."""
    with open_client() as client:
        token, secret = client.create_token(user, label, expires_days)
    err = error_console()
    expires = f", expires {format_time(token.expires_at)}" if token.expires_at else ""
    labelled = f" {token.label!r}" if token.label else ""
    err.print(f"created API token {token.id}{labelled} for {token.user}{expires}")
    typer.echo(secret)
    err.print(
        "[bold yellow]warning:[/] copy the token now: it is not shown again "
        "(modelrail keeps only its hash)"
    )


@tokens_app.command("list")
def list_tokens(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List API tokens (never their secrets): state, expiry, last use."""
    with open_client() as client:
        tokens = client.tokens(user)
    now = time.time()
    if as_json:
        print_json([{**to_plain(token), "state": token.state(now)} for token in tokens])
        return
    table = Table(title="API tokens", title_justify="left")
    for column in ("id", "user", "label", "state", "created", "expires", "last used"):
        table.add_column(column)
    for token in tokens:
        table.add_row(
            str(token.id),
            token.user,
            token.label or "-",
            token.state(now),
            format_time(token.created_at),
            format_time(token.expires_at) if token.expires_at else "never",
            format_time(token.last_used_at),
        )
    console().print(table)


@tokens_app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(help="The token's id (tokens list).")]) -> None:
    """Revoke an API token: it is refused from the next request on."""
    with open_client() as client:
        token = client.revoke_token(token_id)
    console().print(f"revoked API token {token.id} of {token.user}")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")

"""``modelrail policy``: the team's shared policy (show, diff, apply, history)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, format_time, print_json
from modelrail.entities import PolicyRecord
from modelrail.errors import ConfigError, PolicyNotFoundError
from modelrail.policy_document import canonical, differences, parse_document

app = typer.Typer(
    help="The team's shared policy in the store: the environment chain, gates and "
    "permissions every client obeys. Applying one needs the admin role on a server."
)

FileArgument = Annotated[
    Path, typer.Argument(help="A modelrail.toml or policy file with an [environments] table.")
]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None


@app.command("show")
def show(
    version: Annotated[
        int | None,
        typer.Option("--version", help="An earlier version (default: the one in force).", min=1),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The policy in force, complete (every gate and permission spelled out), as TOML."""
    with open_client() as client:
        shown: int | None
        record: PolicyRecord | None
        if version is not None:
            record = client.policy_record(version)
            document, shown = record.document, record.version
        else:
            policy, shown = client.policy_in_force()
            document = canonical(policy)
            record = None if shown is None else client.policy_record(shown)
    if as_json:
        print_json(
            {
                "version": shown,
                "author": record.author if record else None,
                "reason": record.reason if record else None,
                "created_at": record.created_at if record else None,
                "document": document,
            }
        )
        return
    if record is None:
        heading = (
            "# no shared policy in the store: modelrail.toml governs "
            "(on a team server, the server's own)"
        )
    else:
        heading = (
            f"# shared policy version {record.version}, applied by {record.author} "
            f"on {format_time(record.created_at)}" + (f": {record.reason}" if record.reason else "")
        )
    out = console()
    out.print(heading, markup=False, highlight=False)
    out.print(document, markup=False, highlight=False, end="")


@app.command("diff")
def diff(file: FileArgument) -> None:
    """What applying FILE would change in the policy in force (a unified diff)."""
    wanted = canonical(parse_document(_read(file), str(file)))
    with open_client() as client:
        policy, version = client.policy_in_force()
    current = canonical(policy)
    name = f"policy version {version}" if version else "modelrail.toml (no shared policy)"
    lines = differences(current, wanted, name, str(file))
    out = console()
    if not lines:
        out.print(f"{file} matches the {name}: applying it changes nothing", markup=False)
        return
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        out.print(line, style=style, markup=False, highlight=False)


@app.command("apply")
def apply(
    file: FileArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why the policy changes.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Make FILE's [environments] table the shared policy (checked in full first)."""
    document = _read(file)
    with open_client() as client:
        record, created = client.apply_policy(document, source=str(file), reason=reason)
    if as_json:
        print_json({"record": record, "created": created})
        return
    if created:
        console().print(f"applied {file} as policy version {record.version}", markup=False)
    else:
        console().print(
            f"{file} matches policy version {record.version}, which is in force: nothing applied",
            markup=False,
        )


@app.command("history")
def history(as_json: JsonOption = False) -> None:
    """Every applied version of the shared policy: who applied it, when and why."""
    with open_client() as client:
        records = client.policy_history()
    if as_json:
        print_json(records)
        return
    if not records:
        raise PolicyNotFoundError(
            "the store holds no shared policy: 'modelrail policy apply FILE' makes one"
        )
    table = Table(title="policy versions", title_justify="left")
    for column in ("version", "when", "who", "why", "sha256"):
        table.add_column(column)
    for record in records:
        table.add_row(
            str(record.version),
            format_time(record.created_at),
            record.author,
            record.reason or "-",
            record.sha256[:12],
        )
    console().print(table)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="policy")

"""``modelrail card``: a version's model card, generated from its records, and the owner's
free-text sections of it (``card edit``, ``card history``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, format_time, print_json
from modelrail.entities import CardSection
from modelrail.errors import InvalidInputError


class _ShowByDefault(TyperGroup):
    """``modelrail card REF`` is ``modelrail card show REF``: anything but a sub-command's
    name (or the group's --help) goes to ``show``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ShowByDefault,
    no_args_is_help=True,
    help="A model version's card: what it is, its signature, data, params, metrics, gates, "
    "environments, predictor, packages and code, generated from the records, with the "
    "owner's sections (intended use, limitations, ...). 'modelrail card REF' shows it.",
)

Reference = Annotated[
    str, typer.Argument(help="The version: NAME:VERSION, NAME@ENV, or NAME for the latest.")
]


@app.command("show")
def show(
    reference: Reference,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the Markdown to this file (atomically) instead."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the model card of a version as Markdown (the same as 'modelrail card REF')."""
    from modelrail.portability.card_markdown import card_markdown, write_card

    with open_client() as client:
        card = client.model_card(reference)
    if as_json:
        if output is not None:
            raise InvalidInputError("give --json or --output, not both")
        print_json(card.to_json())
        return
    text = card_markdown(card)
    if output is None:
        sys.stdout.write(text)
        return
    write_card(output, text)
    console().print(f"wrote the card of {card.reference} to {output}", markup=False)


@app.command("edit")
def edit(
    target: Annotated[
        str,
        typer.Argument(help="NAME for every version of the model, NAME:VERSION for one only."),
    ],
    section: Annotated[
        str, typer.Option("--section", help="The section's title, e.g. 'Intended use'.")
    ],
    text: Annotated[
        str | None,
        typer.Option("--text", help="The section's new text (Markdown); '' removes it."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Read the new text from this UTF-8 file ('-': stdin)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a free-text section of a model's card (kept with every earlier edit)."""
    if (text is None) == (file is None):
        raise InvalidInputError("give the section's new text with --text or --file (one of them)")
    body = text if text is not None else _read_text(file)
    with open_client() as client:
        written = client.edit_card_section(target, section, body)
    if as_json:
        print_json(written)
        return
    scope = _scope(written)
    done = "removed" if not written.text.strip() else "written"
    console().print(
        f"section {written.title!r} of {scope} {done} by {written.author} (edit {written.id})",
        markup=False,
    )


@app.command("history")
def history(
    model: Annotated[str, typer.Argument(help="The model's name.")],
    section: Annotated[
        str | None, typer.Option("--section", help="Only the edits of this section.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Every edit of a model's card sections, oldest first: who wrote what, and when."""
    with open_client() as client:
        edits = client.card_section_history(model, section)
    if as_json:
        print_json(edits)
        return
    if not edits:
        what = f"section {section!r}" if section else "sections"
        console().print(f"{model} has no card {what} yet", markup=False)
        return
    table = Table(title=f"card sections of {model}", title_justify="left")
    for column in ("edit", "when", "by", "for", "section", "text"):
        table.add_column(column, overflow="fold")
    for e in edits:
        shown = " ".join(e.text.split()) or "(removed)"
        table.add_row(
            str(e.id),
            format_time(e.created_at),
            e.author,
            _scope(e),
            e.title,
            shown if len(shown) <= 80 else shown[:79] + "…",
        )
    console().print(table)


def _scope(section: CardSection) -> str:
    if section.version is None:
        return f"{section.model} (every version)"
    return f"{section.model}:{section.version}"


def _read_text(path: Any) -> str:
    try:
        if str(path) == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"--file {path}: no such file") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"--file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise InvalidInputError(f"--file {path}: cannot be read: {exc.strerror}") from None

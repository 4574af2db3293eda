"""The CLI's one table from library parameter names to flags covers every parameter a library
error names, and names only flags the CLI has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from modelrail.cli.flags import FLAGS, error_message
from modelrail.cli.main import app
from modelrail.errors import BatchInputError

SRC = Path(__file__).resolve().parents[2] / "src" / "modelrail"
PARAMS = re.compile(r"params=\(([^)]*)\)")
NAME = re.compile(r"""["'](\w+)["']""")


def _library_sources() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if "cli" not in p.relative_to(SRC).parts]


def test_every_parameter_a_library_error_names_has_a_flag() -> None:
    named = {
        name
        for path in _library_sources()
        for group in PARAMS.findall(path.read_text())
        for name in NAME.findall(group)
    }
    assert {"force", "id_columns", "replace"} <= named  # the regex still finds them
    assert named - set(FLAGS) == set()


def _options(command: Any) -> set[str]:
    found = {opt for param in command.params for opt in param.opts}
    for sub in getattr(command, "commands", {}).values():
        found |= _options(sub)
    return found


def test_every_flag_in_the_table_is_an_option_of_some_command() -> None:
    options = _options(typer.main.get_command(app))
    assert "--id-column" in options
    assert sorted(set(FLAGS.values()) - options) == []


def test_the_cli_spells_parameters_as_flags() -> None:
    error = BatchInputError("{id_columns} repeats a column: id", params=("id_columns",))
    assert error_message(error) == "--id-column repeats a column: id"
    assert str(error) == "id_columns repeats a column: id"

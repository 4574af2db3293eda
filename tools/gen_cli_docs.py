"""Regenerate docs/cli.md from docs/cli.md.in with the real ``--help`` of every command.

Run ``make docs`` after changing a command; tests/test_docs.py fails while docs/cli.md
is out of date.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "docs" / "cli.md.in"
TARGET = ROOT / "docs" / "cli.md"


def _walk(command: Any, path: list[str]) -> Iterator[list[str]]:
    yield path
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from _walk(sub, [*path, name])


def help_texts() -> dict[str, str]:
    import typer.main

    from modelrail.cli.main import app

    executable = str(Path(sys.executable).with_name("modelrail"))
    texts = {}
    for path in _walk(typer.main.get_command(app), []):
        done = subprocess.run(
            [executable, *path, "--help"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "80", "TERM": "dumb"},
            cwd="/",
            check=True,
        )
        texts[" ".join(path)] = done.stdout.rstrip()
    return texts


def render() -> str:
    texts = help_texts()
    used: set[str] = set()

    def block(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in texts:
            raise SystemExit(f"{TEMPLATE}: no command 'modelrail {key}'")
        used.add(key)
        shown = f"modelrail {key} --help" if key else "modelrail --help"
        return f"```text\n$ {shown}\n{texts[key]}\n```"

    out = re.sub(r"\{\{help:([^}]*)\}\}", block, TEMPLATE.read_text(encoding="utf-8"))
    missing = sorted(set(texts) - used)
    if missing:
        raise SystemExit(f"{TEMPLATE} does not document: {', '.join(missing)}")
    return out


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}")

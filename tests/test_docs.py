"""The docs are tested: every command has help and is documented, and the README's examples run."""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

from modelrail import errors
from modelrail.cli.main import app
from modelrail.scoring.forms.record import PROBABILITY_ATOL

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CLI_DOC = DOCS / "cli.md"
CONFIG_DOC = DOCS / "configuration.md"
CLI = [sys.executable, "-m", "modelrail.cli.main"]

# Commands the README may show but a test must not run: long-running, servers, or network.
_UNSAFE_WORDS = {"demo", "serve", "ui", "scheduler", "batch", "docker", "promote", "rollback"}
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _walk(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    # Typer's groups expose their sub-commands as ``commands`` (vendored click or real click).
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        found.extend(_walk(sub, (*path, name)))
    return found


COMMANDS = _walk(typer.main.get_command(app), ())
SUBCOMMANDS = [(path, command) for path, command in COMMANDS if path]
TOP_LEVEL = sorted({path[0] for path, _ in SUBCOMMANDS})


def _ids(items: list[tuple[tuple[str, ...], Any]]) -> list[str]:
    return [" ".join(path) or "modelrail" for path, _ in items]


def _blocks(text: str, *languages: str) -> list[str]:
    return [body for language, body in _FENCE.findall(text) if language in languages]


def _cli_sections() -> dict[str, str]:
    """docs/cli.md split at its ``## modelrail ...`` headings: command path -> section text."""
    sections: dict[str, str] = {}
    current: str | None = None
    for line in CLI_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            heading = line[3:].strip().strip("`")
            current = None
            if heading.startswith("modelrail "):
                current = heading.removeprefix("modelrail ")
                sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


# -- help -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=_ids(COMMANDS))
def test_every_command_has_help_text(path: tuple[str, ...], command: Any) -> None:
    text = (command.help or command.short_help or "").strip()
    assert text, f"'modelrail {' '.join(path)}' has no help text"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=_ids(COMMANDS))
def test_every_command_help_exits_zero_and_shows_the_help_text(
    path: tuple[str, ...], command: Any
) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="modelrail")
    assert result.exit_code == 0, result.output
    first_words = " ".join((command.help or command.short_help).split()[:4])
    assert first_words in " ".join(result.output.split())
    assert f"modelrail {' '.join(path)}".strip() in result.output


# -- docs/cli.md and the README name every command ----------------------------------------


@pytest.mark.parametrize(("path", "command"), SUBCOMMANDS, ids=_ids(SUBCOMMANDS))
def test_every_command_has_a_section_in_cli_doc(path: tuple[str, ...], command: Any) -> None:
    assert " ".join(path) in _cli_sections(), f"docs/cli.md has no '## modelrail {' '.join(path)}'"


@pytest.mark.parametrize(("path", "command"), SUBCOMMANDS, ids=_ids(SUBCOMMANDS))
def test_every_option_is_documented_under_its_command(path: tuple[str, ...], command: Any) -> None:
    section = _cli_sections().get(" ".join(path), "")
    options = [opt for param in command.params for opt in getattr(param, "opts", ()) if "--" in opt]
    missing = [opt for opt in options if not re.search(rf"{re.escape(opt)}\b", section)]
    assert not missing, f"docs/cli.md, 'modelrail {' '.join(path)}': options {missing} missing"


def test_cli_doc_documents_no_command_that_does_not_exist() -> None:
    existing = {" ".join(path) for path, _ in SUBCOMMANDS}
    assert set(_cli_sections()) <= existing


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_every_top_level_command_appears_in_the_readme(name: str) -> None:
    assert re.search(rf"modelrail {re.escape(name)}\b", README.read_text(encoding="utf-8"))


# -- the README's examples run -------------------------------------------------------------


def _readme_commands() -> list[list[str]]:
    """``modelrail ...`` lines from the README's shell blocks that are safe to run in a test."""
    commands = []
    for block in _blocks(README.read_text(encoding="utf-8"), "bash", "console", "sh", "shell"):
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ")
            if not line.startswith("modelrail ") or "<" in line:
                continue  # placeholders such as <run> cannot run as written
            words = shlex.split(line, comments=True)
            if _UNSAFE_WORDS.isdisjoint(words):
                commands.append(words)
    return commands


def _isolated_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    env["MODELRAIL_HOME"] = str(project)
    env["MPLCONFIGDIR"] = str(project / ".matplotlib")
    return env


@pytest.mark.slow
def test_readme_python_example_and_commands_run_in_a_fresh_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = _isolated_env(tmp_path)
    (code,) = _blocks(README.read_text(encoding="utf-8"), "python")

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"{shlex.join(args)}\n{done.stdout}\n{done.stderr}"
        return done

    run([*CLI, "init"])
    assert (tmp_path / ".modelrail").is_dir()
    run([sys.executable, "-W", "error", "-c", code])

    tracked = json.loads(run([*CLI, "runs", "--json"]).stdout)
    assert tracked["total"] > 0, "the README example recorded no run in the project"
    commands = _readme_commands()
    assert ["modelrail", "runs"] in commands
    for words in commands:
        run([*CLI, *words[1:]])
    _readme_serving_runs_as_written(tmp_path, env, run)


def _readme_serving_runs_as_written(tmp_path: Path, env: dict[str, str], run: Any) -> None:
    """The tour's promotions (its Environments section), then its Serving block for real: the
    server, the line that writes rows.json, and curl's answer, byte for byte."""
    for user, words in _console_lines("modelrail promote", "modelrail approve"):
        as_user = [] if user is None else ["env", f"MODELRAIL_USER={user}"]
        run([*as_user, *CLI, *words[1:]])
    block = next(b for b in _blocks(README.read_text(encoding="utf-8"), "console") if "curl" in b)
    lines = block.splitlines()
    writes_rows = next(line for line in lines if line.startswith("$ python -c"))
    curl_at = next(i for i, line in enumerate(lines) if line.startswith("$ curl"))
    expected = json.loads(lines[curl_at + 1])
    port = _free_port()
    server = subprocess.Popen(
        [*CLI, "serve", "--env", "prod", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        announced = server.stdout.readline()  # printed once the server listens, models loaded
        assert announced.strip() == f"serving prod on http://127.0.0.1:{port} with 1 worker"
        python = shlex.split(writes_rows.removeprefix("$ "))
        with (tmp_path / python[-1]).open("w") as rows:  # the line's "> rows.json"
            subprocess.run(
                [sys.executable, *python[1:-2]],
                cwd=tmp_path,
                env=env,
                check=True,
                timeout=120,
                stdout=rows,
            )
        body = (tmp_path / "rows.json").read_bytes()
        url = next(w for w in shlex.split(lines[curl_at]) if w.startswith("localhost:8080/"))
        path = url.removeprefix("localhost:8080")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(
            "POST", path, body, {"content-type": "application/x-www-form-urlencoded"}
        )
        answer = json.loads(connection.getresponse().read())
        connection.close()
        # Served by the verified predictor form chosen for one row: its probabilities are the
        # model's within the stated tolerance.
        probabilities = answer.pop("probabilities")
        np.testing.assert_allclose(
            probabilities, expected.pop("probabilities"), rtol=0, atol=PROBABILITY_ATOL
        )
        assert answer == expected
    finally:
        server.terminate()
        server.communicate(timeout=30)


def _console_lines(*prefixes: str) -> list[tuple[str | None, list[str]]]:
    """(MODELRAIL_USER or None, words) of README console lines starting with a prefix."""
    found = []
    for block in _blocks(README.read_text(encoding="utf-8"), "console"):
        for line in block.splitlines():
            text = line.removeprefix("$ ")
            user = None
            if text.startswith("MODELRAIL_USER="):
                assignment, text = text.split(" ", 1)
                user = assignment.split("=", 1)[1]
            if text.startswith(prefixes):
                found.append((user, shlex.split(text, comments=True)))
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- links and reference tables --------------------------------------------------------------


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_every_local_link_points_to_an_existing_page_and_heading(page: Path) -> None:
    broken = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.MULTILINE)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert not broken, f"{page.name} links to missing pages or headings: {broken}"


def test_readme_links_every_docs_page() -> None:
    readme = README.read_text(encoding="utf-8")
    for page in DOCS.glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"


def _error_classes() -> list[type[errors.ModelrailError]]:
    found: list[type[errors.ModelrailError]] = []
    pending: list[type[errors.ModelrailError]] = [errors.ModelrailError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == errors.__name__]


def test_exit_code_table_lists_every_error_with_its_exit_code() -> None:
    documented = {
        name: int(code)
        for name, code in re.findall(
            r"^\| `(\w+)` \| (\d+) \|", CONFIG_DOC.read_text(encoding="utf-8"), re.MULTILINE
        )
    }
    actual = {cls.__name__: cls.exit_code for cls in _error_classes()}
    assert documented == actual


def test_cli_reference_is_regenerated_from_the_current_help() -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / "gen_cli_docs.py"
    spec = importlib.util.spec_from_file_location("gen_cli_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (path.parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    assert module.render() == current, "docs/cli.md is out of date: run 'make docs'"

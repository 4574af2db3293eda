"""``modelrail card`` as a user runs it: a model trained by a script in a real git repository
with uncommitted changes, its card printed and written to a file (atomically), sections
written from text, a file and standard input, their history, and bad input refused with a
clear message and a non-zero exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelrail.cli.main import run
from tests.cli.test_cli import MODELRAIL, cli

TRAIN = """
import numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
import modelrail

rng = np.random.default_rng(0)
X = pd.DataFrame({"age": rng.normal(size=80), "city": rng.choice(["a", "b"], size=80)})
X.to_csv("people.csv", index=False)
y = (X["age"] > 0).astype(int)
with modelrail.start_run(experiment="pets", architecture="Alpha") as run:
    run.log_params({"C": 0.5})
    run.log_dataset("people.csv", role="train", name="people")
    run.log_metrics({"test_accuracy": 0.75})
    model = LogisticRegression(C=0.5).fit(X[["age"]], y)
    run.log_model(model, "pets", input_example=X[["age"]][:3])
"""


def in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cwd: Path, *args: str
) -> tuple[int, str, str]:
    """The console script's ``run`` in this process (no interpreter start-up): exit code,
    standard output and standard error."""
    for name in [k for k in os.environ if k.startswith("MODELRAIL_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["modelrail", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        run()
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("card-project")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / "train.py").write_text(TRAIN)
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "train")
    (root / "train.py").write_text(TRAIN + "# tuned\n")  # a dirty tree
    assert cli(root, "init").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    env["MODELRAIL_USER"] = "alice"
    done = subprocess.run(
        [str(Path(MODELRAIL).parent / "python"), "train.py"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return root


def test_card_from_a_script_in_a_dirty_git_tree(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = git(project, "rev-parse", "HEAD")
    done = cli(project, "card", "pets:1")
    assert done.returncode == 0, done.stderr
    card = done.stdout
    assert card.startswith("# Model card: pets version 1\n")
    assert f"| Commit | `{commit}` |" in card
    assert "| Branch | main |" in card
    assert "| Uncommitted changes | yes: uncommitted changes |" in card
    assert "| Architecture | Alpha |" in card and "| Registered | by alice on " in card
    assert f"| train | people | `1.0` | 80 | {project / 'people.csv'} |" in card
    assert "Columns of train (2): age (float64), city (string)" in card
    assert "| test\\_accuracy | 0.75 |" in card

    data = json.loads(in_process(monkeypatch, capsys, project, "card", "pets@dev", "--json")[1])
    assert data["code"]["commit"] == commit and data["code"]["dirty"] is True
    assert data["environments"]["now"] == ["dev"]


def test_output_replaces_a_file_whole_and_leaves_nothing_behind(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def card(*args: str) -> tuple[int, str, str]:
        return in_process(monkeypatch, capsys, project, "card", *args)

    target = project / "cards" / "MODEL_CARD.md"
    target.parent.mkdir(exist_ok=True)
    target.write_text("an old card\n")
    code, out, _ = card("pets", "--output", str(target))
    assert code == 0 and "wrote the card of pets:1" in out
    assert target.read_text() == card("pets:1")[1]
    assert sorted(p.name for p in target.parent.iterdir()) == ["MODEL_CARD.md"]

    code, _, err = card("pets:1", "-o", str(project / "missing" / "card.md"))
    assert code == 2 and "--output" in err and "does not exist" in err
    assert not (project / "missing").exists()
    code, _, err = card("pets:1", "--json", "--output", str(target))
    assert code == 2 and "not both" in err


def test_sections_from_text_file_and_stdin_with_their_history(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = project / "limits.md"
    notes.write_text("- small sample\n- one *city* only\n", encoding="utf-8")

    def card(*args: str) -> tuple[int, str, str]:
        return in_process(monkeypatch, capsys, project, "card", *args)

    assert card("edit", "pets", "--section", "Intended use", "--text", "Demo")[0] == 0
    code, out, _ = card("edit", "pets:1", "--section", "Limitations", "--file", str(notes))
    assert code == 0 and "'Limitations' of pets:1 written by" in out
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    piped = subprocess.run(
        [MODELRAIL, "card", "edit", "pets", "--section", "intended use", "--file", "-", "--json"],
        cwd=project,
        input="Demo, *updated*.\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["text"] == "Demo, *updated*."

    shown = card("pets:1")[1]
    assert "## intended use\n\nDemo, *updated*.\n" in shown
    assert "## Limitations\n\n- small sample\n- one *city* only\n" in shown
    history = json.loads(card("history", "pets", "--json")[1])
    assert [(e["title"], e["version"]) for e in history] == [
        ("Intended use", None),
        ("Limitations", 1),
        ("intended use", None),
    ]
    table = card("history", "pets", "--section", "INTENDED USE")[1]
    assert "Demo, *updated*." in table and "small sample" not in table


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("card", "nobody:1"), 4, "no model named 'nobody'"),
        (("card", "pets:99"), 4, "model 'pets' has no version 99"),
        (("card", "not a ref"), 2, "invalid model reference"),
        (("card", "show", "pets:0"), 2, "invalid version '0'"),
        (("card", "edit", "pets@prod", "--section", "x", "--text", "y"), 2, "not for what prod"),
        (("card", "edit", "pets", "--section", "x"), 2, "with --text or --file"),
        (("card", "edit", "pets", "--section", "", "--text", "y"), 2, "--section needs a title"),
        (("card", "edit", "pets", "--section", "x", "--file", "nowhere.md"), 2, "no such file"),
        (("card", "history", "nobody"), 4, "no model named 'nobody'"),
    ],
)
def test_bad_input_is_a_clear_error(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    words: str,
) -> None:
    exit_code, out, err = in_process(monkeypatch, capsys, project, *args)
    assert exit_code == code, (out, err)
    assert words in err and "Traceback" not in err

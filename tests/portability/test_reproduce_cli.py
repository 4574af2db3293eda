"""``modelrail reproduce`` as a user runs it: a real process in a real project, a table or
JSON, exit 15 naming what differs, 14 for a step that cannot be done, 2 for bad options; the
reproduction shown by ``runs show`` and the tracker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.portability.reproduce_project import git, make_project, train, worktrees

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))
NOISE = "import random; run.log_metrics({'noise': random.random()})"


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    return subprocess.run(
        [MODELRAIL, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=clean
    )


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A run that logs a random metric besides its accuracy."""
    root = make_project(tmp_path_factory.mktemp("cli") / "noisy", extra=NOISE)
    return root, train(root, "1.0")


def test_a_metric_that_differs_exits_15_naming_it(noisy: tuple[Path, str]) -> None:
    root, run_id = noisy
    done = cli(root, "reproduce", run_id[:12], "--reuse-env", "--json")
    assert done.returncode == 15, done.stderr
    report = json.loads(done.stdout)
    assert report["reproduced"] is False and report["differences"] == ["metric noise"]
    rows = {row["component"]: row for row in report["rows"]}
    assert rows["metric accuracy"]["result"] == "same"
    assert rows["code"]["result"] == rows["environment"]["result"] == "same"
    assert "differs in metric noise" in done.stderr and "Traceback" not in done.stderr
    assert worktrees(root) == [str(root)]


def test_ignoring_it_reproduces_and_the_rerun_is_shown_as_a_reproduction(
    noisy: tuple[Path, str],
) -> None:
    root, run_id = noisy
    done = cli(root, "reproduce", "churn:1", "--reuse-env", "--ignore-metric", "noise")
    assert done.returncode == 0, done.stdout + done.stderr
    for component in ("code", "environment", "data:train", "data:test", "params", "predictions"):
        assert component in done.stdout
    assert "120 rows identical" in done.stdout
    assert "reproduced churn:1 (new run" in done.stdout
    assert "checking out" in done.stderr  # progress goes to stderr
    new_run = done.stdout.split("(new run ")[1][:8]
    shown = cli(root, "runs", "show", new_run)
    assert shown.returncode == 0, shown.stderr
    assert re.search(rf"reproduction of +{run_id}", shown.stdout), shown.stdout
    tracker = cli(root, "runs")
    assert f"{new_run} (reproduces {run_id[:8]})" in tracker.stdout


def test_bad_input_is_named_with_its_flag_and_never_a_traceback(noisy: tuple[Path, str]) -> None:
    root, _ = noisy
    cases = [
        (("reproduce", "churn:1", "--data", "train"), 2, "--data 'train' must be ROLE=PATH"),
        (("reproduce", "churn:1", "--data", "validation=x.csv"), 2, "--data names validation"),
        (("reproduce", "churn:1", "--tolerance", "-1"), 2, "--tolerance must be 0 or more"),
        (("reproduce", "nosuchmodel:3"), 4, "nosuchmodel"),
        (("reproduce", "churn:1", "--installer", "conda"), 2, "--installer must be one of"),
        (("reproduce", "churn:1", "--data", "train=/nowhere.csv", "--reuse-env"), 14, "--data"),
    ]
    for args, code, message in cases:
        done = cli(root, *args)
        assert done.returncode == code, (args, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert worktrees(root) == [str(root)]


def test_a_run_with_no_commit_exits_14_saying_so(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q")
    (root / "train.py").write_text(
        "import modelrail\nwith modelrail.start_run('x') as run: pass\nprint('RUN', run.id)\n"
    )
    assert cli(root, "init").returncode == 0
    run_id = train(root)
    done = cli(root, "reproduce", run_id, "--reuse-env")
    assert done.returncode == 14
    assert f"run {run_id[:8]} was made before its repository's first commit" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""

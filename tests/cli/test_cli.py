"""The modelrail command as a user runs it: a real process in a real project folder."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import load_settings

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    return subprocess.run(
        [MODELRAIL, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A project with three runs: two model versions and one run without a model."""
    root = tmp_path_factory.mktemp("project")
    assert cli(root, "init").returncode == 0
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["age", "weight", "height"])
    y = (X["age"] > 0).astype(int)
    ids = []
    with Client(settings=load_settings(cwd=root, environ={}, create=False)) as client:
        for n, (c, rows) in enumerate(((0.1, 60), (1.0, 80))):
            with client.start_run("pets", architecture="Alpha") as run:
                run.log_dataset(X[:rows], name="pets", role="train")
                run.log_params({"C": c})
                model = LogisticRegression(C=c).fit(X[:rows], y[:rows])
                run.log_metrics({"accuracy": 0.8 + n / 10, "false_positive_rate": 0.1 - n / 20})
                run.log_model(model, "pets-classifier", input_example=X[:3])
                ids.append(run.id)
        with client.start_run("other") as run:
            run.log_metric("loss", 0.3)
            ids.append(run.id)
    yield root, ids


def test_init_creates_the_project_and_store(tmp_path: Path) -> None:
    done = cli(tmp_path, "init")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".modelrail" / "modelrail.db").is_file()
    assert "initialised" in done.stdout


def test_runs_prints_the_tracker_table(filled: tuple[Path, list[str]]) -> None:
    root, ids = filled
    done = cli(root, "runs", "--experiment", "pets", "--sort", "version", "--asc")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "pets-classifier" in line]
    assert len(lines) == 2
    assert "Alpha (1.0)" in lines[0] and "80.0%" in lines[0] and "10.0%" in lines[0]
    assert "90.0%" in lines[1] and ids[1][:8] in lines[1]


def test_runs_json_and_csv_are_machine_readable(filled: tuple[Path, list[str]]) -> None:
    root, ids = filled
    data = json.loads(cli(root, "runs", "--json").stdout)
    assert data["total"] == 3
    assert {row["run_id"] for row in data["rows"]} == set(ids)
    by_version = {row["version"]: row for row in data["rows"]}
    assert by_version[2]["labels"]["data:train"] == "1.1"
    assert by_version[1]["labels"]["data:train"] == "1.0"
    table = list(
        csv.DictReader(io.StringIO(cli(root, "runs", "--csv", "--metric", "accuracy").stdout))
    )
    assert len(table) == 3
    assert {row["accuracy"] for row in table} == {"0.8", "0.9", ""}


def test_runs_sort_by_metric_and_limit(filled: tuple[Path, list[str]]) -> None:
    root, ids = filled
    data = json.loads(cli(root, "runs", "--sort", "accuracy", "--limit", "1", "--json").stdout)
    assert [row["run_id"] for row in data["rows"]] == [ids[1]]
    data = json.loads(
        cli(root, "runs", "--sort", "accuracy", "--asc", "--limit", "1", "--json").stdout
    )
    assert [row["run_id"] for row in data["rows"]] == [ids[0]]


def test_runs_show_lists_components_params_and_provenance(filled: tuple[Path, list[str]]) -> None:
    root, ids = filled
    done = cli(root, "runs", "show", ids[0][:8])
    assert done.returncode == 0, done.stderr
    for expected in ("data:train", "environment", "C", "accuracy", "python", "pets-classifier:1"):
        assert expected in done.stdout
    assert json.loads(cli(root, "runs", "show", ids[0], "--json").stdout)["params"] == {"C": 0.1}


def test_runs_diff_names_what_changed(filled: tuple[Path, list[str]]) -> None:
    root, ids = filled
    done = cli(root, "runs", "diff", ids[0], ids[1])
    assert done.returncode == 0, done.stderr
    assert "rows 60 -> 80" in done.stdout
    assert "0.1 -> 1.0" in done.stdout
    data = json.loads(cli(root, "runs", "diff", ids[0], ids[1], "--json").stdout)
    assert {c["role"] for c in data["components"]} == {"data:train", "params"}
    assert {m["key"] for m in data["metrics"]} == {"accuracy", "false_positive_rate"}


def test_runs_best_finds_the_best_model(filled: tuple[Path, list[str]]) -> None:
    root, ids = filled
    done = cli(root, "runs", "best", "--metric", "accuracy")
    assert done.returncode == 0 and "pets-classifier:2" in done.stdout
    lowest = json.loads(cli(root, "runs", "best", "--metric", "accuracy", "--min", "--json").stdout)
    assert lowest["id"] == ids[0]


def test_models_and_models_show(filled: tuple[Path, list[str]]) -> None:
    root, _ = filled
    assert json.loads(cli(root, "models", "--json").stdout)[0]["latest_version"] == 2
    done = cli(root, "models", "show", "pets-classifier")
    assert done.returncode == 0 and "sklearn" in done.stdout and "3 columns" in done.stdout
    versions = json.loads(cli(root, "models", "show", "pets-classifier", "--json").stdout)
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["metrics"]["accuracy"] == 0.9


def test_datasets_lists_versions_with_rows_and_schema(filled: tuple[Path, list[str]]) -> None:
    root, _ = filled
    data = json.loads(cli(root, "datasets", "--json").stdout)
    assert [(d["version"], d["rows"]) for d in data] == [("1.0", 60), ("1.1", 80)]
    assert data[0]["schema"][0] == ["age", "float64"]
    assert "pets" in cli(root, "datasets").stdout


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (("runs", "show", "ffffffff"), 4, "no run with id 'ffffffff'"),
        (("models", "show", "ghost"), 4, "no model named 'ghost'"),
        (("runs", "best", "--metric", "recall"), 4, "'recall'"),
        (("runs", "--sort", "-x"), 2, "cannot sort by '-x'"),
    ],
)
def test_bad_input_gives_one_clear_line_and_an_exit_code(
    filled: tuple[Path, list[str]], args: tuple[str, ...], exit_code: int, message: str
) -> None:
    root, _ = filled
    done = cli(root, *args)
    assert done.returncode == exit_code
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_outside_a_project_the_cli_says_to_run_init(tmp_path: Path) -> None:
    done = cli(tmp_path, "runs")
    assert done.returncode == 2
    assert "modelrail init" in done.stderr
    assert not (tmp_path / ".modelrail").exists()


def test_malformed_store_url_is_named(tmp_path: Path) -> None:
    done = cli(tmp_path, "runs", env={"MODELRAIL_STORE": "no-scheme-here"})
    assert done.returncode == 2
    assert "store URL" in done.stderr and "Traceback" not in done.stderr


def test_unreachable_database_is_named(tmp_path: Path) -> None:
    done = cli(tmp_path, "runs", env={"MODELRAIL_STORE": "postgresql://u@127.0.0.1:1/db"})
    assert done.returncode == 3
    assert "127.0.0.1:1" in done.stderr and "Traceback" not in done.stderr

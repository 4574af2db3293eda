"""``modelrail models show`` says what loading each version runs: nothing but data, the
code shipped with it, or a pickle (unsafe, and refused where allow_pickle = false)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import load_settings
from tests.cli.test_cli import cli
from tests.flavors.test_python_code import linear
from tests.test_pickle_policy import Halves

MODEL = "pets-classifier"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 scikit-learn (skops), 2 a pickle, 3 custom Python with shipped code."""
    root = tmp_path_factory.mktemp("models-show")
    assert cli(root, "init").returncode == 0
    X = pd.DataFrame(np.random.default_rng(2).normal(size=(40, 2)), columns=["a", "b"])
    source, custom = linear(root / "src")
    del sys.modules["my_model"]
    models = [
        (LogisticRegression().fit(X, (X["a"] > 0).astype(int)), {}),
        (Halves(), {"allow_pickle": True}),
        (custom, {"code_paths": [source]}),
    ]
    with Client(settings=load_settings(cwd=root, environ={}, create=False)) as client:
        for model, options in models:
            with client.start_run("pets") as run:
                run.log_metric("accuracy", 0.9)
                run.log_model(model, MODEL, input_example=X[:3], **options)
    return root


def test_the_version_table_marks_pickles_and_shipped_code(project: Path) -> None:
    done = cli(project, "models", "show", MODEL)
    assert done.returncode == 0, done.stderr
    flavors = {
        line.split("│")[1].strip(): line.split("│")[3].strip()
        for line in done.stdout.splitlines()
        if line.startswith("│")
    }
    assert flavors == {
        "1": "sklearn",
        "2": "joblib (UNSAFE: pickle)",
        "3": "python (runs shipped code)",
    }


def test_one_unsafe_version_in_detail_names_the_environments_that_refuse_it(
    project: Path,
) -> None:
    done = cli(project, "models", "show", f"{MODEL}:2")
    assert done.returncode == 0, done.stderr
    loading = next(line for line in done.stdout.splitlines() if line.startswith("loading"))
    assert "UNSAFE: saved with allow_pickle=True" in loading
    assert "Refused by prod (allow_pickle = false)" in loading
    assert "estimator  tests.test_pickle_policy.Halves" in done.stdout


def test_one_custom_version_in_detail_lists_its_code_with_sha256(project: Path) -> None:
    done = cli(project, "models", "show", f"{MODEL}:3")
    assert done.returncode == 0, done.stderr
    assert "runs shipped code: loading imports the code below (1 file" in done.stdout
    (code,) = [line for line in done.stdout.splitlines() if line.startswith("code")]
    digest = json.loads(cli(project, "models", "show", f"{MODEL}:3", "--json").stdout)[
        "flavor_details"
    ]["code"]["my_model.py"]
    assert code.split() == ["code", "my_model.py", "sha256", digest]
    safe = cli(project, "models", "show", f"{MODEL}@dev")  # dev holds the newest, 3
    assert safe.stdout == done.stdout


def test_json_says_whether_loading_is_unsafe_or_runs_code(project: Path) -> None:
    versions = json.loads(cli(project, "models", "show", MODEL, "--json").stdout)
    assert [(v["version"], v["unsafe"], v["runs_code"]) for v in versions] == [
        (1, False, False),
        (2, True, False),
        (3, False, True),
    ]
    one = json.loads(cli(project, "models", "show", f"{MODEL}:1", "--json").stdout)
    assert (one["version"], one["unsafe"], one["metrics"]) == (1, False, {"accuracy": 0.9})


def test_a_version_that_does_not_exist_is_one_clear_line(project: Path) -> None:
    done = cli(project, "models", "show", f"{MODEL}:9")
    assert done.returncode == 4 and "no version 9" in done.stderr
    assert "Traceback" not in done.stderr


def test_one_version_in_detail_says_which_predictor_serves_each_workload(project: Path) -> None:
    done = cli(project, "models", "show", f"{MODEL}:1")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if "verified on" in line or "tried:" in line]
    assert lines[0].split()[0] == "predictor" and "one row: " in lines[0] and "batch: " in lines[0]
    assert "tried: " in lines[1] and "treelite (not a tree ensemble)" in lines[1]
    shown = json.loads(cli(project, "models", "show", f"{MODEL}:1", "--json").stdout)
    assert set(shown["predictors"]) >= {"one_row", "batch", "tried", "verified_rows"}
    assert shown["predictors"]["one_row"]["why"]


def test_compile_builds_the_forms_again_and_says_which_won(project: Path) -> None:
    done = cli(project, "models", "compile", f"{MODEL}:1", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["reference"] == f"{MODEL}:1"
    assert found["predictors"]["one_row"]["form"] in ("compiled-linear", "onnxruntime")
    missing = cli(project, "models", "compile", f"{MODEL}:9")
    assert missing.returncode == 4 and "no version 9" in missing.stderr

"""A small project for the reproduce tests: a real git repository in a temporary folder
with a training script, data git ignores, an uncommitted change and an untracked helper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from modelrail.client import Client
from modelrail.config import init_project, load_settings

TRAIN = """\
import sys
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
import modelrail
from features import prepare

C = float(sys.argv[1])
train = pd.read_csv("data/train.csv")
test = pd.read_csv("data/test.csv")
with modelrail.start_run(experiment="churn", architecture="linear") as run:
    run.log_dataset("data/train.csv", role="train", name="churn")
    run.log_dataset("data/test.csv", role="test", name="churn")
    run.log_params({"C": C, "max_iter": MAX_ITER})
    X, y = prepare(train)
    model = make_pipeline(SimpleImputer(), LogisticRegression(C=C, max_iter=MAX_ITER)).fit(X, y)
    X_test, y_test = prepare(test)
    run.log_metrics({"accuracy": float(model.score(X_test, y_test))})
    EXTRA
    run.log_model(model, name="churn", input_example=X.head(3))
print("RUN", run.id)
"""

FEATURES = """\
def prepare(frame):
    X = frame[["tenure", "charges", "calls"]]
    return X, frame["churned"]
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def churn_data(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    charges = rng.normal(60, 20, rows).round(2)
    calls = rng.poisson(2, rows).astype(float)
    calls[rng.random(rows) < 0.1] = np.nan  # missing values
    plan = rng.choice(["basic", "plus", "pro"], rows)  # a string column the model ignores
    churned = ((charges / tenure + 0.3 * np.nan_to_num(calls)) > 2.5).astype(int)
    return pd.DataFrame(
        {"tenure": tenure, "charges": charges, "calls": calls, "plan": plan, "churned": churned}
    )


def make_project(root: Path, *, extra: str = "pass", max_iter: int = 200) -> Path:
    """The committed script reads MAX_ITER; the uncommitted change sets it."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("data/\n__pycache__/\n")
    (root / "train.py").write_text(TRAIN.replace("EXTRA", extra).replace("MAX_ITER", "100"))
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "train")
    init_project(root)
    (root / "data").mkdir()
    churn_data(300, 1).to_csv(root / "data" / "train.csv", index=False)
    churn_data(120, 2).to_csv(root / "data" / "test.csv", index=False)
    # Uncommitted: the script's max_iter; untracked: the helper it imports.
    (root / "train.py").write_text(TRAIN.replace("EXTRA", extra).replace("MAX_ITER", str(max_iter)))
    (root / "features.py").write_text(FEATURES)
    return root


def train(
    root: Path, *args: str, python: str = sys.executable, env: dict[str, str] | None = None
) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    done = subprocess.run(
        [python, "train.py", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=180,
        env={**clean, **(env or {})},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split("RUN ")[-1].strip()


def open_client(root: Path) -> Client:
    return Client(settings=load_settings(cwd=root, environ={}, create=False))


def worktrees(root: Path) -> list[str]:
    return [
        line.removeprefix("worktree ")
        for line in git(root, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]

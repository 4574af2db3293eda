"""Build (once) the virtualenv with MLflow 3 that the MLflow import tests and benchmark use.

    python tools/mlflow_env.py        # prints the virtualenv's python; builds it when missing

It is bench/.envs/mlflow (git ignores it; a fresh CI machine builds it on first use, a few
minutes with pip's configured index), holding mlflow>=3,<4 and, at the versions modelrail's
own .venv has, scikit-learn and XGBoost (so models MLflow saves load on modelrail's side),
plus psycopg for MLflow's PostgreSQL backend. MLflow never goes into .venv: its pins could
change the project's own versions. Delete the folder to get a newer MLflow.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = ROOT / "bench" / ".envs" / "mlflow"
PYTHON = ENV / "bin" / "python"
PROBE = "import mlflow, sklearn, xgboost, psycopg; print(mlflow.__version__)"


def _pinned(distribution: str, *names: str) -> str:
    """``distribution==version`` at the version this interpreter has of any of ``names``."""
    for name in names:
        try:
            return f"{distribution}=={importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return distribution


def ensure() -> Path:
    if not PYTHON.exists():
        ENV.parent.mkdir(parents=True, exist_ok=True)
        venv.create(ENV, with_pip=True)
    check = subprocess.run([PYTHON, "-c", PROBE], capture_output=True, text=True)
    if check.returncode != 0:
        packages = [
            "mlflow>=3,<4",
            _pinned("scikit-learn", "scikit-learn"),
            _pinned("xgboost-cpu", "xgboost-cpu", "xgboost"),
            "psycopg[binary]>=3.1",
        ]
        print(f"installing {' '.join(packages)} into {ENV} ...", file=sys.stderr, flush=True)
        subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", *packages], check=True)
        check = subprocess.run([PYTHON, "-c", PROBE], capture_output=True, text=True, check=True)
    version = check.stdout.strip()
    if not version.startswith("3."):
        raise SystemExit(f"{ENV} holds MLflow {version}, not MLflow 3: delete it and rerun")
    return PYTHON


if __name__ == "__main__":
    print(ensure())

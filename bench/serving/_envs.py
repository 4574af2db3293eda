"""The peers' virtualenvs and the one model every server serves.

Each peer gets its own virtualenv under bench/.envs (reused when present) with the same
scikit-learn as .venv, so one pickle loads everywhere.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sklearn

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
ENVS = BENCH / ".envs"
APPS = Path(__file__).resolve().parent / "apps"
SKLEARN = f"scikit-learn=={sklearn.__version__}"


def _pinned(distribution: str, module: str) -> tuple[str, str, str]:
    """(requirement at .venv's version, import name, version) for a library the pickles need."""
    version = importlib.metadata.version(distribution)
    return f"{distribution}=={version}", module, version


# The model families' libraries, at .venv's versions so their pickles load in the FastAPI app.
FAMILY_LIBRARIES = (
    (SKLEARN, "sklearn", sklearn.__version__),
    _pinned("xgboost-cpu", "xgboost"),
    _pinned("lightgbm", "lightgbm"),
)
PACKAGES = {
    "mlflow": ["mlflow>=3,<4", SKLEARN],
    "bentoml": ["bentoml", SKLEARN, "pandas"],
    "fastapi": ["fastapi", "uvicorn[standard]", "pandas", "numpy"]
    + [requirement for requirement, _, _ in FAMILY_LIBRARIES],
}
MODEL_NAME = "bench-model"


class SetupError(Exception):
    pass


def _call(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise SetupError(f"{' '.join(cmd[:4])} ... failed ({done.returncode}):\n" + "\n".join(tail))
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for servers: no modelrail/MLflow settings leaking in from ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELRAIL_", "MLFLOW_"))}
    env.pop("VIRTUAL_ENV", None)
    env.update(extra)
    return env


def ensure_env(name: str) -> Path:
    """bench/.envs/NAME with its packages; created with pip on first use."""
    venv = ENVS / name
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"  creating {venv.relative_to(ROOT)} (pip install {' '.join(PACKAGES[name])})")
        _call([sys.executable, "-m", "venv", str(venv)])
        _call([str(python), "-m", "pip", "install", "--quiet", *PACKAGES[name]])
    pinned = FAMILY_LIBRARIES if name == "fastapi" else FAMILY_LIBRARIES[:1]
    code = "import importlib\n" + "".join(
        f"try: print(importlib.import_module({module!r}).__version__)\n"
        "except ImportError: print('-')\n"
        for _, module, _ in pinned
    )
    found = _call([str(python), "-c", code]).split()
    stale = [req for (req, _, want), got in zip(pinned, found, strict=True) if got != want]
    if stale:  # an older env: align it so the pickles load
        _call([str(python), "-m", "pip", "install", "--quiet", *stale])
    return venv


@dataclass(frozen=True)
class Model:
    pickle_path: Path
    columns_path: Path
    example_path: Path
    columns: list[str]
    row: dict[str, float]  # the request's single row
    expected: Any  # scikit-learn's predicted class for it


def train(work: Path) -> Model:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = load_breast_cancer(as_frame=True)
    X = frame.data.rename(columns=lambda c: c.replace(" ", "_"))
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(X, frame.target)
    saved = Model(
        pickle_path=work / "model.pkl",
        columns_path=work / "columns.json",
        example_path=work / "example.json",
        columns=list(X.columns),
        row={c: float(v) for c, v in X.iloc[0].items()},
        expected=model.predict(X[:1])[0].item(),
    )
    saved.pickle_path.write_bytes(pickle.dumps(model))
    saved.columns_path.write_text(json.dumps(saved.columns))
    X[:5].to_json(saved.example_path, orient="records", double_precision=15)
    register_modelrail(work / "modelrail-project", model, X)
    return saved


def register_modelrail(project: Path, model: Any, X: Any) -> None:
    """A fresh project (``modelrail init``) holding the model as bench-model:1 in dev."""
    from modelrail import Client
    from modelrail.config import load_settings

    project.mkdir()
    _call([str(ROOT / ".venv" / "bin" / "modelrail"), "init"], cwd=project, env=clean_env())
    client = Client(settings=load_settings(cwd=project, environ={}, create=False))
    try:
        with client.start_run("serving-bench") as run:
            version = run.log_model(model, MODEL_NAME, input_example=X[:5])
        held = {h.model: h.version for h in client.board() if h.environment == "dev"}
        if held.get(MODEL_NAME) != version.version:
            raise SetupError(f"{version.reference} did not land in dev (dev holds {held})")
    finally:
        client.close()


def export(kind: str, venv: Path, model: Model, out: Path, env: dict[str, str]) -> None:
    python = str(venv / "bin" / "python")
    script = str(APPS / "export_model.py")
    args = [python, script, kind, str(model.pickle_path), str(model.example_path)]
    _call([*args, str(out)] if kind == "mlflow" else args, env=env)


VERSIONED = {
    ROOT / ".venv": (
        *("modelrail", "scikit-learn", "numpy", "orjson", "uvicorn", "uvloop", "httptools"),
        *("xgboost-cpu", "lightgbm", "statsmodels", "pandas", "prometheus-client"),
    ),
    ENVS / "fastapi": (
        *("fastapi", "uvicorn", "uvloop", "httptools", "pydantic", "pandas"),
        *("xgboost-cpu", "lightgbm"),
    ),
    ENVS / "bentoml": ("bentoml", "uvicorn", "pandas"),
    ENVS / "mlflow": ("mlflow", "uvicorn", "pandas"),
}


def versions() -> dict[str, str]:
    """Package versions per virtualenv, e.g. {"fastapi": "fastapi 0.1, uvicorn 0.3, ..."}."""
    found: dict[str, str] = {}
    for venv, names in VERSIONED.items():
        if not (venv / "bin" / "python").exists():
            continue
        code = (
            "import importlib.metadata as m\n"
            f"for n in {names!r}:\n"
            "    try: print(n, m.version(n))\n"
            "    except m.PackageNotFoundError: pass\n"
        )
        try:
            lines = _call([str(venv / "bin" / "python"), "-c", code]).strip().splitlines()
        except SetupError:
            continue
        found[venv.name] = ", ".join(lines)
    return found


def source_state() -> str:
    """The git commit, whether src/ has uncommitted edits, and a digest of src/modelrail."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src" / "modelrail").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True)
    edits = " + uncommitted edits" if dirty.stdout.strip() else ""
    return f"commit {head.stdout.strip() or 'none'}{edits}, src/modelrail {digest.hexdigest()[:12]}"

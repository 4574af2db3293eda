"""`modelrail docker build`: the build context, and the bundle it serves, for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}


def _project(root: Path) -> tuple[pd.DataFrame, LogisticRegression]:
    init_project(root)
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    with Client(settings=load_settings(cwd=root, environ={}, create=False)) as client:
        with client.start_run("img") as run:
            run.log_model(model, "imaged", input_example=X[:3])
        client.promote("imaged:1", "staging", reason="for the image")
    return X, model


def test_context_has_a_pinned_non_root_dockerfile_and_a_verified_bundle(tmp_path: Path) -> None:
    _project(tmp_path)
    context = tmp_path / "ctx"
    done = subprocess.run(
        [MODELRAIL, "docker", "build", "--env", "staging", "--context-only", str(context)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.startswith("# Written by") and "FROM python:3.11-slim" in dockerfile
    assert "USER modelrail" in dockerfile and "EXPOSE 8080" in dockerfile
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    assert '"serve", "--bundle", "/app/bundle"' in dockerfile
    requirements = (context / "requirements.txt").read_text().split()
    from importlib import metadata

    assert f"scikit-learn=={metadata.version('scikit-learn')}" in requirements
    assert all("==" in line for line in requirements)
    assert len(list((context / "wheels").glob("modelrail-*.whl"))) == 1
    manifest = json.loads((context / "bundle" / "manifest.json").read_text())
    (entry,) = manifest["models"]
    assert entry["environment"] == "staging" and entry["version"]["version"] == 1
    # The model and its predictor forms, which the server scores with (no scikit-learn load).
    for sha in _bundled_shas(context).values():
        assert (context / "bundle" / "artifacts" / "sha256" / sha[:2] / sha[2:]).is_file()


def test_bundled_files_are_readable_by_the_images_non_root_user(tmp_path: Path) -> None:
    # The image copies the bundle as root and serves it as the `modelrail` user: a file left
    # private to its writer (mkstemp's 0600) made the container refuse to start.
    previous = os.umask(0o022)
    try:
        _project(tmp_path)
        context = tmp_path / "ctx"
        done = subprocess.run(
            [MODELRAIL, "docker", "build", "--env", "staging", "--context-only", str(context)],
            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env(),
        )  # fmt: skip
    finally:
        os.umask(previous)
    assert done.returncode == 0, done.stderr
    files = [p for p in (context / "bundle").rglob("*") if p.is_file()]
    assert len(files) >= 3
    private = [str(p) for p in files if p.stat().st_mode & 0o044 != 0o044]
    assert private == []
    stored = [p for p in (tmp_path / ".modelrail").rglob("sha256/*/*") if p.is_file()]
    assert stored and all(p.stat().st_mode & 0o044 == 0o044 for p in stored)


def _bundled_shas(context: Path) -> dict[str, str]:
    manifest = json.loads((context / "bundle" / "manifest.json").read_text())
    (entry,) = manifest["models"]
    version = entry["version"]
    forms = version["forms"]
    (chosen,) = [t for t in forms["tried"] if t["kind"] == forms["chosen"]["one_row"]]
    return {"model": version["artifact_sha256"], "compiled form": chosen["sha256"]}


def _bundled_file(context: Path, which: str) -> Path:
    sha = _bundled_shas(context)[which]
    return context / "bundle" / "artifacts" / "sha256" / sha[:2] / sha[2:]


@pytest.mark.parametrize("compiled_form", ["bundled", "absent (an older bundle)"])
def test_the_bundle_serves_correct_predictions_without_a_store(
    tmp_path: Path, compiled_form: str
) -> None:
    X, model = _project(tmp_path)
    context = tmp_path / "ctx"
    subprocess.run(
        [MODELRAIL, "docker", "build", "imaged:1", "--context-only", str(context)],
        cwd=tmp_path, capture_output=True, timeout=300, env=_env(), check=True,
    )  # fmt: skip
    if compiled_form != "bundled":
        _bundled_file(context, "compiled form").unlink()
    elsewhere = tmp_path / "elsewhere"  # no project here: the bundle is all the server has
    elsewhere.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [MODELRAIL, "serve", "--bundle", str(context / "bundle"), "--port", str(port)],
        cwd=elsewhere, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        body = json.dumps({"inputs": X[:5].to_dict(orient="records")}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/imaged/predict",
            data=body,
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
        assert answer["version"] == 1
        assert answer["predictions"] == model.predict(X[:5]).tolist()
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.mark.parametrize("which", ["model", "compiled form"])
def test_a_tampered_bundle_artifact_stops_the_server_at_start(tmp_path: Path, which: str) -> None:
    _project(tmp_path)
    context = tmp_path / "ctx"
    subprocess.run(
        [MODELRAIL, "docker", "build", "imaged:1", "--context-only", str(context)],
        cwd=tmp_path, capture_output=True, timeout=300, env=_env(), check=True,
    )  # fmt: skip
    artifact = _bundled_file(context, which)
    artifact.write_bytes(artifact.read_bytes()[:-1] + b"x")
    done = subprocess.run(
        [MODELRAIL, "serve", "--bundle", str(context / "bundle"), "--port", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=_env(),
    )  # fmt: skip
    assert done.returncode == 8
    assert "imaged:1" in done.stderr and "sha256" in done.stderr


def test_the_image_installs_what_each_models_library_needs(tmp_path: Path) -> None:
    """An environment holding an XGBoost and a LightGBM model: both libraries are pinned to
    the versions the models were saved with, XGBoost as its CPU wheel (the same module)."""
    from importlib import metadata

    import xgboost
    from lightgbm import LGBMClassifier
    from xgboost import XGBClassifier

    init_project(tmp_path)
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int)
    with Client(settings=load_settings(cwd=tmp_path, environ={}, create=False)) as client:
        client.register_model(
            XGBClassifier(n_estimators=3).fit(X, y), "boosted", input_example=X[:3]
        )
        lgbm = LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
        client.register_model(lgbm, "leafy", input_example=X[:3])
    context = tmp_path / "ctx"
    done = subprocess.run(
        [MODELRAIL, "docker", "build", "--env", "dev", "--context-only", str(context)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    requirements = (context / "requirements.txt").read_text().split()
    assert f"xgboost-cpu=={xgboost.__version__}" in requirements
    assert f"lightgbm=={metadata.version('lightgbm')}" in requirements
    assert not any(line.startswith("xgboost==") for line in requirements)
    # The runtimes of the predictor forms chosen at registration are installed too.
    from modelrail.scoring.forms.record import stored_blobs

    with Client(settings=load_settings(cwd=tmp_path, environ={}, create=False)) as client:
        kinds = {
            what.removesuffix(" form")
            for name in ("boosted", "leafy")
            for _, _, what in stored_blobs(client.get_model_version(f"{name}:1"))
        }
    assert kinds & {"onnxruntime", "treelite"}, kinds  # trees get a fast form
    for runtime in kinds & {"onnxruntime", "treelite"}:
        assert f"{runtime}=={metadata.version(runtime)}" in requirements

"""A model file replaced while it is being loaded is never loaded unchecked: every load reads
the bytes it verified, so a file swapped in between a check and a second open cannot run."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.errors import ArtifactIntegrityError
from modelrail.registry import load_model_version
from modelrail.scoring.compiled import compile_model, form_to_bytes
from modelrail.scoring.predictor import scoring_model_for
from tests.test_environments import compiled_sha256

SWAP_SECONDS = 3.0
# Replaces the file again and again, alternating the good and the bad content, each time
# through a rename (as an attacker with write access to the folder would).
_SWAPPER = """
import os, sys, time
path, good, bad, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
contents = [open(good, "rb").read(), open(bad, "rb").read()]
deadline = time.monotonic() + seconds
i = 0
while time.monotonic() < deadline:
    temp = f"{path}.swap"
    with open(temp, "wb") as out:
        out.write(contents[i % 2])
    os.replace(temp, path)
    i += 1
"""


class ConstantModel:
    """A plain object with predict(): saved by the joblib fallback."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, X: object) -> np.ndarray:
        return np.full(len(X), self.value)  # type: ignore[arg-type]


class _Payload:
    """Unpickling this creates ``marker``: what a malicious model file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    return X, (X["a"] - X["c"] > 0).astype(int)


@contextmanager
def _swapping(path: Path, bad: bytes) -> Iterator[None]:
    path.chmod(0o644)
    good_copy = path.with_name(path.name + ".good")
    bad_copy = path.with_name(path.name + ".bad")
    good_copy.write_bytes(path.read_bytes())
    bad_copy.write_bytes(bad)
    args = [str(path), str(good_copy), str(bad_copy), str(SWAP_SECONDS)]
    swapper = subprocess.Popen([sys.executable, "-c", _SWAPPER, *args])
    try:
        yield
    finally:
        swapper.wait(timeout=SWAP_SECONDS + 30)


def _load_while_swapped(path: Path, bad: bytes, load: Callable[[], Any]) -> tuple[list[Any], int]:
    """Load again and again while the file is swapped; the loaded objects and the refusals."""
    loaded: list[Any] = []
    refused = 0
    with _swapping(path, bad):
        deadline = time.monotonic() + SWAP_SECONDS
        while time.monotonic() < deadline:
            try:
                loaded.append(load())
            except ArtifactIntegrityError:
                refused += 1
    return loaded, refused


def test_a_pickle_swapped_in_during_loads_never_runs(sqlite_client: Client, tmp_path: Path) -> None:
    X, _ = _data()
    with sqlite_client.start_run("swap") as run:
        version = run.log_model(
            ConstantModel(1.5), "constant", input_example=X[:3], allow_pickle=True
        )
    assert version.flavor == "joblib"
    marker = tmp_path / "code-ran"
    path = sqlite_client.artifacts.path_for(version.artifact_sha256)

    loaded, refused = _load_while_swapped(
        path,
        pickle.dumps(_Payload(marker)),
        lambda: load_model_version(sqlite_client.artifacts, version),
    )

    assert not marker.exists(), "a swapped-in pickle was loaded without being checked"
    assert refused > 0, "the swap never raced a load: the test proved nothing"
    assert loaded and all(m.predict(X[:2]).tolist() == [1.5, 1.5] for m in loaded)


def test_a_skops_file_swapped_in_during_loads_is_never_loaded(
    sqlite_client: Client, tmp_path: Path
) -> None:
    X, y = _data()
    model = LogisticRegression().fit(X, y)
    other = LogisticRegression().fit(X, 1 - y)  # same types, opposite answers
    with sqlite_client.start_run("swap") as run:
        version = run.log_model(model, "linear", input_example=X[:3])
    path = sqlite_client.artifacts.path_for(version.artifact_sha256)
    expected = model.predict(X).tolist()

    loaded, refused = _load_while_swapped(
        path, sio.dumps(other), lambda: load_model_version(sqlite_client.artifacts, version)
    )

    assert refused > 0, "the swap never raced a load: the test proved nothing"
    assert loaded and all(m.predict(X).tolist() == expected for m in loaded)


def test_a_compiled_form_swapped_in_during_loads_is_never_used(sqlite_client: Client) -> None:
    X, y = _data()
    model = LogisticRegression().fit(X, y)
    other = compile_model(LogisticRegression().fit(X, 1 - y))
    assert other is not None
    with sqlite_client.start_run("swap") as run:
        version = run.log_model(model, "linear", input_example=X[:3])
    path = sqlite_client.artifacts.path_for(compiled_sha256(version))
    bad = form_to_bytes(other)
    assert bad is not None
    expected = model.predict(X).tolist()

    scorers, refused = _load_while_swapped(
        path, bad, lambda: scoring_model_for(sqlite_client.artifacts, version)
    )

    assert refused > 0, "the swap never raced a load: the test proved nothing"
    assert version.forms is not None
    chosen = version.forms["chosen"]["one_row"]
    assert scorers and all(s.predictor_kind == chosen for s in scorers)
    assert all(s.score(X.to_numpy()).predictions.tolist() == expected for s in scorers)

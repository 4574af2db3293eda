"""Data and checks shared by the XGBoost, LightGBM and CatBoost flavor tests.

Small on purpose: a few hundred rows and a handful of trees keep each file to seconds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from modelrail.client import Client
from modelrail.entities import ModelVersion
from modelrail.scoring.predictor import Scored, scoring_model_for

TRAIN_ROWS = 1500
UNSEEN = "pilot"  # an occupation no model was trained with


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    y: Any
    test: pd.DataFrame


def split(X: pd.DataFrame, y: Any, rows: int) -> Split:
    """The first ``rows`` of a shuffle to train on, the rest held out."""
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X.iloc[order].reset_index(drop=True), np.asarray(y)[order]
    return Split(X.iloc[:rows], y[:rows], X.iloc[rows:].reset_index(drop=True))


def binary() -> Split:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return split(X, y, 400)


def multiclass() -> Split:
    X, y = load_wine(return_X_y=True, as_frame=True)
    return split(X, y, 120)


def regression() -> Split:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return split(X, y, 350)


def with_missing(data: Split, share: float = 0.15) -> Split:
    """``data`` with NaN in a share of every numeric cell, in training and held-out rows."""
    rng = np.random.default_rng(1)

    def holes(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.mask(rng.random(frame.shape) < share)

    return Split(holes(data.train), data.y, holes(data.test))


def fair() -> tuple[pd.DataFrame, np.ndarray]:
    """statsmodels' ``fair`` survey with ``occupation`` as text ("occ1" ... "occ6", object
    dtype, as JSON and Parquet hand it over); the target is whether affairs > 0."""
    from statsmodels.datasets import fair as fair_data

    data = fair_data.load_pandas().data  # sorted by affairs: shuffled so any slice has both
    data = data.iloc[np.random.default_rng(0).permutation(len(data))].reset_index(drop=True)
    occupation = "occ" + data["occupation"].astype(int).astype(str)
    X = data.drop(columns=["affairs"]).assign(occupation=occupation.astype(object))
    return X, (data["affairs"] > 0).to_numpy(dtype=np.int64)


def fair_held_out(X: pd.DataFrame) -> pd.DataFrame:
    """Held-out rows of ``fair()`` with a missing number, an unseen occupation and a
    missing one."""
    rows = X.iloc[TRAIN_ROWS : TRAIN_ROWS + 60].reset_index(drop=True).copy()
    rows.loc[0, "age"] = np.nan
    rows.loc[1, "occupation"] = UNSEEN
    rows.loc[2, "occupation"] = None
    rows.loc[3, ["educ", "children"]] = np.nan
    return rows


def stored_file(client: Client, version: ModelVersion) -> bytes:
    return client.artifacts.read_verified(
        version.artifact_sha256, size=version.artifact_size, label=version.reference
    )


def assert_not_pickle(data: bytes) -> None:
    assert data[:1] != b"\x80", "the model was pickled"
    assert b"pickle" not in data[:64].lower()


def served(client: Client, version: ModelVersion, frame: pd.DataFrame) -> Scored:
    """``frame`` scored the way serving and batch scoring do: as a float64 matrix when the
    signature is all numbers, else as a DataFrame."""
    scoring = scoring_model_for(client.artifacts, version)
    frame = frame[list(scoring.columns)]
    if scoring.numeric:
        return scoring.score(frame.to_numpy(dtype=np.float64))
    return scoring.score_frame(frame)


def assert_same(found: Any, expected: Any) -> None:
    """Equal values, compared in float64 (XGBoost computes in float32, modelrail gives
    float64: the same numbers)."""
    found, expected = np.asarray(found), np.asarray(expected)
    assert found.shape == expected.shape
    if expected.dtype.kind == "f":
        np.testing.assert_array_equal(found.astype(np.float64), expected.astype(np.float64))
    else:
        np.testing.assert_array_equal(found, expected)


def block_import(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``name`` look uninstalled: only its import fails, the rest still loads."""
    real = importlib.import_module

    def fake(module: str, package: str | None = None) -> Any:
        if module == name or module.startswith(f"{name}."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(module, package)

    monkeypatch.setattr(importlib, "import_module", fake)

"""Data and checks shared by the XGBoost, LightGBM and CatBoost flavor tests.

Small on purpose: a few hundred rows and a handful of trees keep each file to seconds.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from modelrail.batch.runner import run_batch
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.entities import ModelVersion
from modelrail.errors import ModelFlavorError
from modelrail.gates import GateContext, evaluate
from modelrail.policy import GatePolicy
from modelrail.registry import loaded_from_bytes
from modelrail.scoring.forms.record import PROBABILITY_ATOL, VALUE_RTOL
from modelrail.scoring.predictor import Scored, scoring_model_for
from modelrail.serving.server import ServeOptions

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


def as_words(y: Any) -> np.ndarray:
    """Class numbers 0, 1, 2 as text labels."""
    return np.array(["low", "mid", "high"], dtype=object)[np.asarray(y)]


def assert_stored_natively(
    client: Client, version: ModelVersion, model: Any, *, file_format: str, magic: bytes
) -> None:
    """``version`` was saved by its library's flavor in that library's own format (its file
    starts with ``magic``), not pickled, and records the packages that predict with it."""
    library = type(model).__module__.split(".")[0]
    assert version.flavor == library
    details = version.flavor_details
    assert details["format"] == file_format
    assert details["estimator"] == f"{type(model).__module__}.{type(model).__name__}"
    assert details["packages"][library] == importlib.import_module(library).__version__
    assert details["unsafe"] is False
    stored = stored_file(client, version)
    assert stored[:1] != b"\x80", "the model was pickled"
    assert stored.startswith(magic)


def assert_refused_as_newer(version: ModelVersion, data: bytes, file_format: str) -> None:
    """``data``, bytes the installed library cannot read, given as a file recorded as saved
    by a (future) 99.0.0 of the library: refused naming the model class, the format, both
    versions and the upgrade that reads it; and without the newer version, as damaged."""
    library = version.flavor
    installed = importlib.import_module(library).__version__
    packages = {**version.flavor_details["packages"], library: "99.0.0"}
    newer = replace(version, flavor_details={**version.flavor_details, "packages": packages})

    with pytest.raises(ModelFlavorError) as refused:
        loaded_from_bytes(newer, data)
    message = str(refused.value)
    assert f"{version.flavor_details['estimator']} ({file_format} file)" in message
    assert f"saved by {library} 99.0.0, newer than the {library} {installed}" in message
    assert f"pip install '{library}>=99.0.0'" in message
    with pytest.raises(ModelFlavorError, match="may be damaged"):
        loaded_from_bytes(version, data)


def served(client: Client, version: ModelVersion, frame: pd.DataFrame) -> Scored:
    """``frame`` scored the way serving and batch scoring do: as a float64 matrix when the
    signature is all numbers, else as a DataFrame."""
    scoring = scoring_model_for(client.artifacts, version)
    frame = frame[list(scoring.columns)]
    if scoring.numeric:
        return scoring.score(frame.to_numpy(dtype=np.float64))
    return scoring.score_frame(frame)


def assert_batch_scores(
    client: Client,
    reference: str,
    rows: pd.DataFrame,
    expected: Any,
    folder: Path,
    **options: Any,
) -> None:
    """A batch run (``options``: JobSpec's, e.g. ``engine="spark"``) scoring ``rows`` from a
    Parquet file into a Parquet folder writes the ``expected`` predictions."""
    source = folder / "rows.parquet"
    pq.write_table(pa.Table.from_pandas(rows.assign(id=np.arange(len(rows)))), source)
    output = folder / "scores"
    spec = JobSpec(
        reference=reference,
        output=str(output),
        id_columns=("id",),
        inputs=(str(source),),
        **options,
    )
    record = run_batch(client, spec)
    assert record.status == "succeeded", record.error
    written = pq.read_table(output).to_pandas().sort_values("id")["prediction"]
    expected = np.asarray(expected).reshape(-1)
    assert_as_served(written.to_numpy(dtype=expected.dtype), expected)


def assert_served_over_http(client: Client, version: ModelVersion, rows: pd.DataFrame) -> None:
    """A prediction server for ``version`` answers both protocols (modelrail's records and
    MLflow's ``dataframe_split``) with what ``client.load_model`` predicts for ``rows``."""
    from tests.serving.conftest import running_server

    loaded = client.load_model(version.reference)
    expected = loaded.predict(rows).tolist()
    probabilities = loaded.predict_proba(rows)
    split = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
    native = {"inputs": rows.to_dict("records")}
    options = ServeOptions(references=(version.reference,))
    with running_server(client.settings, options) as server:
        for path, body in [
            (f"/v1/models/{version.model}/predict", native),
            ("/invocations", {"dataframe_split": split}),
        ]:
            reply = server.post(path, body)
            assert reply.status == 200, reply.text
            # Labels equal; a regressor's values within a verified form's tolerance.
            assert_as_served(reply.json()["predictions"], expected)
            if probabilities is not None:
                assert_as_served(reply.json()["probabilities"], probabilities)


def assert_gates_pass(client: Client, version: ModelVersion, *, runtime: bool) -> None:
    """The promotion gates that look at the model itself pass: its format is safe, it loads
    and scores its input example as production would (the smoke test), and (``runtime``)
    the packages it recorded are the ones installed here."""
    policy = GatePolicy(
        require_previous=False,
        signature_compatible=False,
        smoke_test=True,
        smoke_latency_ms=10_000.0,
        runtime_compatible=runtime,
        allow_pickle=False,
    )
    context = GateContext(
        candidate=version,
        candidate_run=None,
        incumbent=None,
        incumbent_run=None,
        previous_environment=None,
        entered_previous_at=None,
        seconds_in_previous=0.0,
        primary_metric="accuracy",
        artifacts=client.artifacts,
        now=time.time(),
    )
    found = {result.gate.split(" within ")[0]: result for result in evaluate(policy, context)}
    assert found["safe format"].passed
    assert found["safe format"].detail == version.flavor_details["format"]
    assert found["smoke test"].passed, found["smoke test"].detail
    if runtime:
        assert found["runtime compatible"].passed, found["runtime compatible"].detail
        library = version.flavor
        installed = version.flavor_details["packages"][library]
        assert f"{library} {installed}" in found["runtime compatible"].detail


def assert_scores_like(
    client: Client,
    version: ModelVersion,
    model: Any,
    rows: pd.DataFrame,
    *,
    as_given: pd.DataFrame | None = None,
) -> Any:
    """``version`` loaded back, and as serving and batch scoring score it, predicts ``rows``
    exactly as ``model`` predicts ``as_given`` (the same rows as the model's own library
    takes them; ``rows`` itself by default). Returns the loaded model."""
    given = rows if as_given is None else as_given
    loaded = client.load_model(version.reference)
    scored = served(client, version, rows)
    expected = np.asarray(model.predict(given))
    if hasattr(model, "predict_proba"):  # labels: CatBoost gives them as a (n, 1) column
        expected = expected.reshape(-1)
    assert_same(loaded.predict(rows), expected)
    assert_as_served(scored.predictions, expected)
    if not hasattr(model, "predict_proba"):
        assert loaded.predict_proba(rows) is None and scored.probabilities is None
        return loaded.model
    probabilities = model.predict_proba(given)
    assert_same(loaded.predict_proba(rows), probabilities)
    assert scored.probabilities is not None
    assert scored.probabilities.dtype == np.float64 and scored.probabilities.flags.c_contiguous
    assert_as_served(scored.probabilities, probabilities)
    return loaded.model


def assert_booster_scores(
    client: Client,
    version: ModelVersion,
    rows: Any,
    expected: Any,
    probabilities: Any = None,
) -> Any:
    """A Booster's version, loaded back and as served, predicts ``expected`` for ``rows`` (a
    matrix or a frame, as it was trained on), with ``probabilities`` when given. Returns
    the loaded model."""
    loaded = client.load_model(version.reference)
    scored = served(client, version, pd.DataFrame(rows, columns=version.input_example["columns"]))
    assert_same(loaded.predict(rows), expected)
    assert_as_served(scored.predictions, expected)
    if probabilities is not None:
        assert_same(loaded.predict_proba(rows), probabilities)
        assert_as_served(scored.probabilities, probabilities)
    return loaded.model


def two_columns(positive: Any) -> np.ndarray:
    """Both classes' probabilities from the positive one's."""
    p = np.asarray(positive, dtype=np.float64)
    return np.column_stack([1.0 - p, p])


def assert_same(found: Any, expected: Any) -> None:
    """Equal values, compared in float64 (XGBoost computes in float32, modelrail gives
    float64: the same numbers)."""
    found, expected = np.asarray(found), np.asarray(expected)
    assert found.shape == expected.shape
    if expected.dtype.kind == "f":
        np.testing.assert_array_equal(found.astype(np.float64), expected.astype(np.float64))
    else:
        np.testing.assert_array_equal(found, expected)


def assert_as_served(found: Any, expected: Any) -> None:
    """What serving and batch answer: labels equal, numbers within the stated tolerance of
    a verified predictor form (scoring/forms), which may be what scored them."""
    found, expected = np.asarray(found), np.asarray(expected)
    assert found.shape == expected.shape
    if expected.dtype.kind != "f":
        np.testing.assert_array_equal(found, expected)
        return
    wanted = expected.astype(np.float64)
    finite = np.isfinite(wanted)
    scale = float(np.abs(wanted[finite]).max()) if finite.any() else 0.0
    np.testing.assert_allclose(
        found.astype(np.float64),
        wanted,
        rtol=VALUE_RTOL,
        atol=max(PROBABILITY_ATOL, VALUE_RTOL * scale),
    )


def block_import(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``name`` look uninstalled: only its import fails, the rest still loads."""
    real = importlib.import_module

    def fake(module: str, package: str | None = None) -> Any:
        if module == name or module.startswith(f"{name}."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(module, package)

    monkeypatch.setattr(importlib, "import_module", fake)

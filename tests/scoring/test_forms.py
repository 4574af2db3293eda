"""Predictor forms (issue 16): built when a version is registered, verified against the model,
timed, the fastest chosen per workload, stored content-addressed and sha256-checked; a form
that disagrees is never used, and a missing runtime only removes its candidate."""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import ModelVersion
from modelrail.errors import ArtifactIntegrityError
from modelrail.scoring.forms.build import build_forms
from modelrail.scoring.forms.converters import Built, Subject, builders
from modelrail.scoring.forms.record import (
    PROBABILITY_ATOL,
    VALUE_RTOL,
    FormsRecord,
    forms_record,
    summary_lines,
)
from modelrail.scoring.predictor import scoring_model_for

NUMBERS = ["a", "b", "c", "d"]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(settings=settings, user="tester") as made:
        yield made


def _numbers(rows: int, seed: int = 0, gaps: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(rows, 4)) * [1, 10, 0.1, 3], columns=NUMBERS)
    y = ((X["a"] + X["b"] / 10 + rng.normal(size=rows) * 0.3) > 0).astype(int).to_numpy()
    if gaps:
        X.loc[X.index[::6], "b"] = np.nan
        X.loc[X.index[::9], "d"] = np.nan
    return X, y


def _text(rows: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = _numbers(rows, seed)
    rng = np.random.default_rng(seed + 1)
    X["city"] = rng.choice(["paris", "rome", "oslo", "lima"], size=rows).astype(object)
    y = (y + (X["city"] == "oslo").to_numpy()) % 2
    return X, y


def _forest() -> tuple[Any, pd.DataFrame]:
    from sklearn.ensemble import RandomForestClassifier

    X, y = _numbers(600)
    return RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0).fit(X, y), X


def _histogram() -> tuple[Any, pd.DataFrame]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = _numbers(600, gaps=True)
    return HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y), X


def _xgboost() -> tuple[Any, pd.DataFrame]:
    import xgboost as xgb

    X, y = _numbers(600, gaps=True)
    return xgb.XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1).fit(X, y), X


def _lightgbm() -> tuple[Any, pd.DataFrame]:
    import lightgbm as lgb

    X, y = _numbers(600, gaps=True)
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1, n_jobs=1)
    return model.fit(X, y), X


def _lightgbm_categories() -> tuple[Any, pd.DataFrame]:
    """A pandas category column of text: Treelite scores it by its training code."""
    import lightgbm as lgb

    X, y = _text(600)
    X["city"] = X["city"].astype("category")
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, verbose=-1, n_jobs=1)
    model.fit(X, y)
    return model, X.astype({"city": object})


def _catboost() -> tuple[Any, pd.DataFrame]:
    import catboost

    X, y = _numbers(600, gaps=True)
    labels = np.where(y == 1, "churn", "stay")  # text labels, scored by class index in ONNX
    model = catboost.CatBoostClassifier(
        iterations=40, depth=4, verbose=0, allow_writing_files=False, thread_count=1
    )
    return model.fit(X, labels), X


def _text_pipeline() -> tuple[Any, pd.DataFrame]:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = _text(600)
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("numbers", StandardScaler(), NUMBERS),
        ]
    )
    return make_pipeline(encode, LogisticRegression(max_iter=500)).fit(X, y), X


MODELS: dict[str, Callable[[], tuple[Any, pd.DataFrame]]] = {
    "random-forest": _forest,
    "hist-gradient-boosting": _histogram,
    "xgboost": _xgboost,
    "lightgbm": _lightgbm,
    "lightgbm-categories": _lightgbm_categories,
    "catboost": _catboost,
    "one-hot-pipeline": _text_pipeline,
}


def _held_out(name: str) -> pd.DataFrame:
    """Rows the model never saw, with missing values (where the model takes them) and, for
    the pipeline, a city no one trained on."""
    if name in ("one-hot-pipeline", "lightgbm-categories"):
        rows, _ = _text(80, seed=7)
        rows.loc[rows.index[::5], "city"] = "atlantis"
        if name == "lightgbm-categories":
            rows.loc[rows.index[1::7], "city"] = None
            rows.loc[rows.index[2::6], "b"] = np.nan
        return rows
    rows, _ = _numbers(80, seed=7, gaps=name != "random-forest")
    return rows


def _assert_same(found: Any, model: Any, rows: pd.DataFrame) -> None:
    if "city" in rows and hasattr(model, "booster_"):  # as LightGBM was trained: a category
        cities = pd.Index(model.booster_.pandas_categorical[0])
        codes = cities.get_indexer(rows["city"].to_numpy(dtype=object))  # unseen: -1, missing
        city = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(cities))
        rows = rows.assign(city=city)
    assert found.predictions.tolist() == np.asarray(model.predict(rows)).reshape(-1).tolist()
    np.testing.assert_allclose(
        found.probabilities, model.predict_proba(rows), rtol=0, atol=PROBABILITY_ATOL
    )


@pytest.mark.parametrize("name", MODELS)
def test_forms_are_built_chosen_and_answer_as_the_model(client: Client, name: str) -> None:
    model, X = MODELS[name]()
    version = client.register_model(model, name, input_example=X[:5])
    record = forms_record(version)
    assert record is not None
    fast = [t for t in record.tried if t.verified and t.kind != "library"]
    assert fast, summary_lines(record, version.flavor)
    assert record.verified_rows > 1000
    rows = _held_out(name)
    for workload in ("one_row", "batch"):
        scoring = scoring_model_for(client.artifacts, version, workload)
        assert scoring.predictor_kind in (record.chosen[workload], version.flavor)
        if scoring.numeric:
            found = scoring.score(rows[NUMBERS].to_numpy(dtype=np.float64))
        else:
            found = scoring.score_frame(rows[list(scoring.columns)])
        _assert_same(found, model, rows)
        for i in range(3):  # one row at a time, as a server scores
            one = rows.iloc[[i]]
            single = scoring.score_input(
                one.to_numpy(dtype=np.float64) if scoring.numeric else one.reset_index(drop=True)
            )
            _assert_same(single, model, one)


def test_the_record_says_what_was_tried_and_why(client: Client) -> None:
    model, X = _forest()
    version = client.register_model(model, "forest", input_example=X[:5])
    record = forms_record(version)
    assert record is not None
    kinds = [t.kind for t in record.tried]
    assert kinds == ["compiled-linear", "onnxruntime", "treelite", "library"]
    linear = record.form("compiled-linear")
    assert linear is not None and not linear.verified and linear.reason == "not linear"
    for tried in record.tried:
        if tried.verified:
            assert tried.one_row_us is not None and tried.batch_rows_per_s is not None
    first, second = summary_lines(record, version.flavor)
    assert first.startswith("one row: ") and "verified on" in first and "batch: " in first
    assert second.startswith("tried: ") and "compiled-linear (not linear)" in second
    stored = [t for t in record.tried if t.sha256]
    assert {t.kind for t in stored} == {
        record.chosen[w] for w in ("one_row", "batch") if record.chosen[w] != "library"
    }


def test_a_form_with_changed_bytes_is_refused_by_its_sha256(client: Client) -> None:
    model, X = _forest()
    version = client.register_model(model, "forest", input_example=X[:5])
    record = forms_record(version)
    assert record is not None
    chosen = record.chosen_for("one_row")
    assert chosen is not None and chosen.sha256 is not None
    path = client.artifacts.path_for(chosen.sha256)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match=f"{chosen.kind} form"):
        scoring_model_for(client.artifacts, version, "one_row")


def test_a_form_that_disagrees_with_its_model_is_never_chosen(client: Client) -> None:
    """A form built from another model is a valid ONNX graph that runs, but gives other
    answers: verification refuses it, and the library serves."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    model, X = _forest()
    y_other = (X["c"] > 0).astype(int)
    other = LogisticRegression().fit(X, y_other)
    proto = to_onnx(other, X[:1].to_numpy(dtype=np.float32), options={"zipmap": False})

    def wrong_onnx(subject: Subject) -> Built:
        details = {"layout": "matrix", "float": "float32", "output": "probabilities"}
        return Built("onnxruntime", proto.SerializeToString(), details)

    version = client.register_model(model, "forest", input_example=X[:5])
    subject = _subject(client, version)
    record = build_forms(client.artifacts, subject, candidates={"onnxruntime": wrong_onnx})
    onnx = record.form("onnxruntime")
    assert onnx is not None and not onnx.verified
    assert onnx.reason.startswith("disagrees: ") and "labels differ" in onnx.reason
    assert set(record.chosen.values()) == {"library"}
    assert onnx.sha256 is None  # never stored


def _subject(client: Client, version: ModelVersion) -> Subject:
    loaded = client.load_model(version.reference)
    frame = pd.DataFrame(version.input_example["data"], columns=version.input_example["columns"])
    return Subject(loaded.model, loaded.predictor, version.flavor, version.signature, frame)


def test_an_older_version_without_forms_serves_through_its_library(client: Client) -> None:
    model, X = _forest()
    version = client.register_model(model, "forest", input_example=X[:5])
    older = dataclasses.replace(version, forms=None)
    for workload in ("one_row", "batch"):
        scoring = scoring_model_for(client.artifacts, older, workload)
        assert scoring.loaded is not None and scoring.predictor_kind == "sklearn"
        _assert_same(scoring.score(X.to_numpy()), model, X)
    assert "no fast forms" in summary_lines(None, "sklearn")[0]


def test_compile_adds_forms_to_a_version_registered_without_them(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelrail.registry

    model, X = _forest()
    monkeypatch.setattr(modelrail.registry, "_forms", lambda *args: None)
    version = client.register_model(model, "forest", input_example=X[:5])
    monkeypatch.undo()
    assert version.forms is None
    assert scoring_model_for(client.artifacts, version).loaded is not None

    compiled = client.compile_model("forest:1")

    assert compiled.version == 1 and compiled.artifact_sha256 == version.artifact_sha256
    record = forms_record(client.get_model_version("forest:1"))
    assert record is not None and record.chosen["one_row"] != "library"
    scoring = scoring_model_for(client.artifacts, compiled, "one_row")
    assert scoring.loaded is None
    _assert_same(scoring.score(X.to_numpy()), model, X)


@pytest.mark.parametrize("missing", ["onnxruntime", "treelite"])
def test_a_missing_runtime_only_removes_its_candidate(
    client: Client, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    model, X = _forest()
    _hide(monkeypatch, missing)
    version = client.register_model(model, "forest", input_example=X[:5])
    monkeypatch.undo()

    record = forms_record(version)
    assert record is not None
    gone = record.form(missing)
    assert gone is not None and not gone.verified and "is not installed" in gone.reason
    other = "treelite" if missing == "onnxruntime" else "onnxruntime"
    kept = record.form(other)
    assert kept is not None and kept.verified, kept


def _slow_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Time the model's own library as far slower than any form (only the clock is faked),
    so a test of what a form does is not decided by a busy machine's timings."""
    from modelrail.scoring.forms import build

    monkeypatch.setattr(build, "_library_timings", lambda *args: (1e6, 1.0))


def _hide(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    """Make ``missing`` (a package) fail to import, as on a machine without it."""
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def is_missing(name: str) -> bool:
        return name == missing or name.startswith(missing + ".")

    def without(name: str, *args: Any, **kwargs: Any) -> Any:
        if is_missing(name):
            raise ImportError(f"No module named {missing!r}")
        return real_import(name, *args, **kwargs)

    def import_module_without(name: str, package: str | None = None) -> Any:
        if is_missing(name):
            raise ImportError(f"No module named {missing!r}")
        return real_import_module(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module_without)
    monkeypatch.setattr(builtins, "__import__", without)


def test_a_regressor_form_keeps_to_the_stated_tolerance(client: Client) -> None:
    from sklearn.ensemble import RandomForestRegressor

    X, _ = _numbers(400)
    y = X["a"] * 100 + X["b"]
    model = RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0).fit(X, y)
    version = client.register_model(model, "regressor", input_example=X[:5])
    rows, _ = _numbers(50, seed=3)
    scoring = scoring_model_for(client.artifacts, version, "one_row")
    found = scoring.score(rows.to_numpy())
    expected = model.predict(rows)
    scale = VALUE_RTOL * float(np.abs(expected).max())
    np.testing.assert_allclose(found.predictions, expected, rtol=VALUE_RTOL, atol=scale)


def test_serving_a_tree_form_never_imports_scikit_learn(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, X = _forest()
    _slow_library(monkeypatch)
    client.register_model(model, "forest", input_example=X[:5])
    monkeypatch.undo()
    script = f"""
import sys
from pathlib import Path
from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.scoring.predictor import scoring_model_for
settings = load_settings(cwd=Path({str(tmp_path)!r}), environ={{}}, create=False)
with Client(settings=settings, user="tester") as client:
    version = client.get_model_version("forest:1")
    scoring = scoring_model_for(client.artifacts, version, "one_row")
    import numpy as np
    scored = scoring.score(np.zeros((1, 4)))
print(scoring.predictor_kind, "sklearn" in sys.modules, "skops" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    kind, sklearn, skops = done.stdout.split()
    assert kind in ("onnxruntime", "treelite")
    assert (sklearn, skops) == ("False", "False")


def test_the_record_round_trips_through_json(client: Client) -> None:
    model, X = _forest()
    version = client.register_model(model, "forest", input_example=X[:5])
    assert version.forms is not None
    record = FormsRecord.from_json(version.forms)
    assert record.to_json() == dict(version.forms)
    assert builders().keys() == {"compiled-linear", "onnxruntime", "treelite"}


def test_a_spark_executor_refuses_a_shipped_form_whose_bytes_changed(client: Client) -> None:
    """The batch form travels to each executor as bytes and is checked against the sha256
    in the version's record there, as the model's artifact is."""
    from modelrail.batch.spark_executor import ShippedModel, _load_scorer

    model, X = _text_pipeline()
    version = client.register_model(model, "pipeline", input_example=X[:5])
    record = forms_record(version)
    assert record is not None
    chosen = record.chosen_for("batch")
    if chosen is None:
        pytest.skip("the library itself was measured fastest for batches here")
    assert chosen.sha256 is not None
    artifact = client.artifacts.read_verified(version.artifact_sha256)
    form = client.artifacts.read_verified(chosen.sha256)
    shipped = ShippedModel(version, artifact, (), "fail", "run", None, form)
    assert _load_scorer(shipped).model.predictor_kind == chosen.kind
    changed = ShippedModel(version, artifact, (), "fail", "run", None, form[:-1] + b"x")
    with pytest.raises(ArtifactIntegrityError, match=f"{chosen.kind} form of pipeline:1"):
        _load_scorer(changed)


def test_a_text_pipeline_form_scores_request_columns_without_building_a_dataframe(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelrail.serving.input_spec import InputSpec, typed_columns

    model, X = _text_pipeline()
    _slow_library(monkeypatch)
    version = client.register_model(model, "towns", input_example=X[:5])
    monkeypatch.undo()
    scoring = scoring_model_for(client.artifacts, version, "one_row")
    if scoring.predictor_kind != "onnxruntime":
        pytest.fail(f"expected the ONNX form to be chosen, got {scoring.predictor_kind}")
    rows = _held_out("one-hot-pipeline")[:6]
    spec = InputSpec.from_signature(version.signature)
    request = [tuple(r) for r in rows[list(spec.columns)].itertuples(index=False)]
    built: list[object] = []
    real = pd.DataFrame

    def counting(*args: Any, **kwargs: Any) -> pd.DataFrame:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(pd, "DataFrame", counting)
    scored = scoring.score_input(typed_columns(request, spec, "inputs"))
    monkeypatch.setattr(pd, "DataFrame", real)
    assert built == []
    _assert_same(scored, model, rows)


def test_rows_a_forest_scores_as_a_tie_get_the_models_own_label(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 fully grown trees on noisy labels: many rows get exactly 50 votes each way, where
    # scikit-learn answers the first class and a float32 sum may lean to the other.
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(3000, 5)), columns=list("abcde"))
    y = ((X["a"] + rng.normal(size=3000)) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    rows = rng.normal(size=(6000, 5))
    expected = model.predict(pd.DataFrame(rows, columns=X.columns))
    tied = model.predict_proba(pd.DataFrame(rows, columns=X.columns))
    assert (tied[:, 0] == tied[:, 1]).sum() > 20
    _hide(monkeypatch, "treelite")  # so ONNX Runtime's float32 trees serve both workloads
    _slow_library(monkeypatch)
    version = client.register_model(model, "tied", input_example=X[:5])
    monkeypatch.undo()
    leaning = 0
    for workload in ("one_row", "batch"):
        scoring = scoring_model_for(client.artifacts, version, workload)
        assert scoring.predictor_kind == "onnxruntime"
        assert scoring.form is not None
        assert scoring.score_input(rows).predictions.tolist() == expected.tolist()
        leaning += int((scoring.form.scores(rows).predictions != expected).sum())
    # The forms on their own do lean the other way on some ties: what the guard is for.
    assert leaning > 0
    # Ties were seen at verification, so a server loads the model in the background at once
    # rather than stalling on the first tied request.
    record = forms_record(version)
    onnx = None if record is None else record.form("onnxruntime")
    assert onnx is not None and onnx.details["near_ties"] > 0
    served = scoring_model_for(client.artifacts, version, "one_row")
    assert served.library_expected and not served.library_loaded
    served.prefetch_library()
    for thread in threading.enumerate():
        if thread.name == "modelrail-library-prefetch":
            thread.join(timeout=60)
    assert served.library_loaded


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_a_forest_trained_with_missing_values_scores_them_in_its_onnx_form(
    client: Client, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # scikit-learn's trees learn a side for missing values at every split; the ONNX form
    # must send NaN the same way, not leave those rows to the model.
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    X, y = _numbers(800, gaps=True)
    if kind == "classifier":
        model: Any = RandomForestClassifier(n_estimators=25, random_state=0).fit(X, y)
    else:
        model = RandomForestRegressor(n_estimators=25, random_state=0).fit(X, X["a"] * 3 + y)
    _hide(monkeypatch, "treelite")
    _slow_library(monkeypatch)
    version = client.register_model(model, f"gappy-{kind}", input_example=X[:5])
    monkeypatch.undo()
    record = forms_record(version)
    assert record is not None
    onnx = record.form("onnxruntime")
    assert onnx is not None and onnx.verified, onnx
    assert onnx.details.get("missing") != "library"
    rows, _ = _numbers(400, seed=11, gaps=True)
    scoring = scoring_model_for(client.artifacts, version, "batch")
    assert scoring.predictor_kind == "onnxruntime"
    found = scoring.form.scores(rows.to_numpy()) if scoring.form is not None else None
    assert found is not None
    if kind == "classifier":
        _assert_same(found, model, rows)
    else:
        np.testing.assert_allclose(found.predictions, model.predict(rows), rtol=1e-5)

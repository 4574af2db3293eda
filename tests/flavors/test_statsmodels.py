"""statsmodels results: saved as JSON (never pickle unless allowed), predicting like statsmodels
through load_model, and through what serving and batch scoring use."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula
import statsmodels.formula.api as smf

from modelrail.client import Client
from modelrail.entities import ModelVersion
from modelrail.errors import InvalidRequestError, ModelFlavorError
from modelrail.flavors.base import SaveOptions
from modelrail.flavors.statsmodels import StatsmodelsFlavor
from modelrail.scoring.predictor import scoring_model_for

FORMULA_INPUTS = ["occupation", "age", "yrs_married"]
NUMERIC_INPUTS = ["age", "yrs_married", "children"]


@pytest.fixture(scope="module")
def fair() -> tuple[pd.DataFrame, pd.DataFrame]:
    """statsmodels' affairs survey, occupations as text, split into training and held-out rows."""
    data = sm.datasets.fair.load_pandas().data
    data["affair"] = (data["affairs"] > 0).astype(int)
    for column in ("occupation", "occupation_husb"):
        data[column] = data[column].astype(int).astype(str)
    held_out = data.sample(400, random_state=0)
    return data.drop(held_out.index), held_out


def _stored(client: Client, version: ModelVersion) -> bytes:
    return client.artifacts.read_verified(
        version.artifact_sha256, size=version.artifact_size, label=version.reference
    )


def test_formula_logit_is_saved_as_json_and_predicts_like_statsmodels(
    client: Client, fair: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = fair
    result = smf.logit("affair ~ C(occupation) + age + yrs_married", train).fit(disp=0)
    with client.start_run("fair") as run:
        version = run.log_model(result, "affair", input_example=test[FORMULA_INPUTS].head(5))
    assert version.flavor == "statsmodels"
    details = version.flavor_details
    assert details["format"] == "statsmodels-json" and details["unsafe"] is False
    assert set(details["packages"]) == {"numpy", "pandas"}
    assert details["formula"] == "affair ~ C(occupation) + age + yrs_married"
    assert not _stored(client, version).startswith(b"\x80")
    assert [c.dtype for c in version.signature.inputs] == ["string", "float64", "float64"]
    assert version.signature.classes == (0, 1) and version.signature.has_probabilities

    expected = np.asarray(result.predict(test))
    loaded = client.load_model("affair:1")
    proba = loaded.predict_proba(test)  # every column of the survey: the formula picks its own
    assert proba is not None
    np.testing.assert_allclose(proba[:, 1], expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(loaded.predict(test[FORMULA_INPUTS]), expected > 0.5)

    scoring = scoring_model_for(client.artifacts, version)
    scored = scoring.score_frame(test[FORMULA_INPUTS].reset_index(drop=True))
    assert scored.probabilities is not None and scored.probabilities.flags.c_contiguous
    np.testing.assert_allclose(scored.probabilities[:, 1], expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(scored.predictions, (expected > 0.5).astype(np.int64))


_RHS = "C(occupation) + age + yrs_married"
FITS: dict[str, tuple[Callable[[pd.DataFrame], Any], str]] = {
    "ols": (lambda d: smf.ols(f"rate_marriage ~ {_RHS}", d).fit(), "regression"),
    "glm-poisson": (
        lambda d: smf.glm(f"affairs ~ {_RHS}", d, family=sm.families.Poisson()).fit(),
        "regression",
    ),
    "glm-binomial": (
        lambda d: smf.glm(f"affair ~ {_RHS}", d, family=sm.families.Binomial()).fit(),
        "binary",
    ),
    "probit": (lambda d: smf.probit(f"affair ~ {_RHS}", d).fit(disp=0), "binary"),
}


@pytest.mark.parametrize("name", list(FITS))
def test_formula_models_score_like_statsmodels(
    sqlite_client: Client,
    fair: tuple[pd.DataFrame, pd.DataFrame],
    name: str,
) -> None:
    train, test = fair
    fit, kind = FITS[name]
    result = fit(train)
    version = sqlite_client.register_model(
        result, "fair-model", input_example=test[FORMULA_INPUTS].head(5)
    )
    expected = np.asarray(result.predict(test))
    loaded = sqlite_client.load_model("fair-model:1")
    scored = scoring_model_for(sqlite_client.artifacts, version).score_frame(test[FORMULA_INPUTS])
    if kind == "binary":
        proba = loaded.predict_proba(test[FORMULA_INPUTS])
        assert proba is not None and scored.probabilities is not None
        np.testing.assert_allclose(proba[:, 1], expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(scored.probabilities[:, 1], expected, rtol=1e-9, atol=1e-12)
    else:
        assert loaded.predict_proba(test) is None and scored.probabilities is None
        np.testing.assert_allclose(loaded.predict(test), expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(scored.predictions, expected, rtol=1e-9, atol=1e-12)


def test_logit_fitted_with_add_constant_takes_its_columns_with_or_without_const(
    client: Client, fair: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = fair
    result = sm.Logit(train["affair"], sm.add_constant(train[NUMERIC_INPUTS])).fit(disp=0)
    expected = np.asarray(result.predict(sm.add_constant(test[NUMERIC_INPUTS])))
    with client.start_run("fair") as run:
        version = run.log_model(result, "affair", input_example=test[NUMERIC_INPUTS].head(5))
        with_const = run.log_model(
            result, "affair", input_example=sm.add_constant(test[NUMERIC_INPUTS]).head(5)
        )
    assert [c.name for c in version.signature.inputs] == NUMERIC_INPUTS
    assert [c.name for c in with_const.signature.inputs] == ["const", *NUMERIC_INPUTS]
    assert not _stored(client, version).startswith(b"\x80")
    for saved, frame in ((version, test[NUMERIC_INPUTS]), (with_const, sm.add_constant(test))):
        proba = client.load_model(saved.reference).predict_proba(frame)
        assert proba is not None
        np.testing.assert_allclose(proba[:, 1], expected, rtol=1e-9, atol=1e-12)
        columns = [c.name for c in saved.signature.inputs]
        matrix = np.ascontiguousarray(sm.add_constant(test)[columns].to_numpy(dtype=np.float64))
        scored = scoring_model_for(client.artifacts, saved).score(matrix)
        assert scored.probabilities is not None
        np.testing.assert_allclose(scored.probabilities[:, 1], expected, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(scored.predictions, (expected > 0.5).astype(np.int64))


def test_ols_fitted_on_arrays_takes_columns_by_position(
    sqlite_client: Client, fair: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = fair
    X = sm.add_constant(train[NUMERIC_INPUTS].to_numpy())
    result = sm.OLS(train["rate_marriage"].to_numpy(), X).fit()
    rows = test[NUMERIC_INPUTS].to_numpy()
    version = sqlite_client.register_model(result, "rate", input_example=rows[:5])
    assert [c.name for c in version.signature.inputs] == ["0", "1", "2"]
    expected = result.predict(sm.add_constant(rows))
    np.testing.assert_allclose(sqlite_client.load_model("rate:1").predict(rows), expected)
    scored = scoring_model_for(sqlite_client.artifacts, version).score(rows.astype(np.float64))
    np.testing.assert_allclose(scored.predictions, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("engine", ["patsy", "formulaic"])
def test_interactions_contrasts_and_functions_rebuild_under_either_formula_engine(
    fair: tuple[pd.DataFrame, pd.DataFrame], engine: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(statsmodels.formula.options, "formula_engine", engine)
    train, test = fair
    contrast = 'Treatment("3")' if engine == "patsy" else 'contr.treatment("3")'
    formula = (
        f"affair ~ C(occupation, {contrast}) * age + occupation_husb:yrs_married"
        " + np.log(age) + I(yrs_married ** 2)"
    )
    result = smf.logit(formula, train).fit(disp=0)
    flavor = StatsmodelsFlavor()
    details = flavor.save(result, tmp_path / "model", SaveOptions())
    assert details["trained_with"].keys() == {"statsmodels", engine}
    predictor = flavor.predictor(flavor.load((tmp_path / "model").read_bytes(), details), details)
    expected = np.asarray(result.predict(test))
    np.testing.assert_allclose(predictor.predict_proba(test)[:, 1], expected, rtol=1e-9)
    assert list(predictor.feature_names_in_) == [
        "occupation", "age", "occupation_husb", "yrs_married"
    ]  # fmt: skip


def test_unseen_level_and_missing_values_are_refused_naming_the_column_or_row(
    sqlite_client: Client, fair: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = fair
    result = smf.logit("affair ~ C(occupation) + age + yrs_married", train).fit(disp=0)
    version = sqlite_client.register_model(
        result, "affair", input_example=test[FORMULA_INPUTS].head(5)
    )
    # statsmodels scores no row with a missing value: serving and batch refuse them up front.
    assert not any(c.nullable for c in version.signature.inputs)
    scoring = scoring_model_for(sqlite_client.artifacts, version)
    rows = test[FORMULA_INPUTS].head(3).reset_index(drop=True).astype(object)
    rows.loc[1, "occupation"] = "9"
    with pytest.raises(InvalidRequestError, match="'occupation' has '9'") as refused:
        scoring.score_frame(rows)
    assert refused.value.field == "occupation"
    rows.loc[1, "occupation"] = None
    rows.loc[2, "age"] = None
    scored = scoring.score_frame(rows)  # probabilities NaN, as statsmodels gives them
    unscorable = scored.nonfinite_rows()
    assert unscorable is not None and unscorable.tolist() == [False, True, True]
    assert scored.probabilities is not None
    expected = result.predict(rows.head(1).infer_objects()).iloc[0]
    np.testing.assert_allclose(scored.probabilities[0, 1], expected, rtol=1e-9)
    with pytest.raises(InvalidRequestError, match="row 1: no class") as no_class:
        sqlite_client.load_model("affair:1").predict(rows)
    assert no_class.value.field == "inputs[1]"


def test_stateful_formula_is_refused_unless_pickle_is_allowed(
    client: Client, fair: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = fair
    result = smf.logit("affair ~ C(occupation) + center(age)", train).fit(disp=0)
    example = test[["occupation", "age"]].head(5)
    with client.start_run("fair") as run:
        with pytest.raises(ModelFlavorError, match="allow_pickle=True") as refused:
            run.log_model(result, "affair", input_example=example)
        assert "center(age)" in refused.value.message
        assert client.list_models() == []
        version = run.log_model(result, "affair", input_example=example, allow_pickle=True)
    details = version.flavor_details
    assert details["unsafe"] is True and details["format"] == "statsmodels-pickle"
    assert {"statsmodels", "numpy", "pandas", "scipy", "patsy"} <= set(details["packages"])
    assert _stored(client, version).startswith(b"\x80")
    assert result.model.data.frame is not None  # the user's result keeps its data
    expected = np.asarray(result.predict(test))
    proba = client.load_model("affair:1").predict_proba(test[["occupation", "age"]])
    assert proba is not None
    np.testing.assert_allclose(proba[:, 1], expected, rtol=1e-9)
    scored = scoring_model_for(client.artifacts, version).score_frame(test[["occupation", "age"]])
    np.testing.assert_array_equal(scored.predictions, (expected > 0.5).astype(np.int64))


def test_pickled_model_without_statsmodels_names_the_extra(
    sqlite_client: Client, fair: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: Any
) -> None:
    train, test = fair
    result = smf.logit("affair ~ center(age)", train).fit(disp=0)
    sqlite_client.register_model(
        result, "affair", input_example=test[["age"]].head(3), allow_pickle=True
    )
    monkeypatch.setitem(sys.modules, "statsmodels", None)  # import statsmodels now fails
    with pytest.raises(ModelFlavorError, match=r"affair:1: .*'modelrail\[statsmodels\]'"):
        sqlite_client.load_model("affair:1")


def test_files_from_a_newer_format_or_statsmodels_say_what_to_install(
    fair: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, _ = fair
    result = smf.ols("rate_marriage ~ age", train).fit()
    flavor = StatsmodelsFlavor()
    details = flavor.save(result, tmp_path / "model", SaveOptions())
    document = json.loads((tmp_path / "model").read_bytes())
    newer = json.dumps({**document, "format_version": 2}).encode()
    with pytest.raises(ModelFlavorError, match=r"newer modelrail .*version 2.*upgrade modelrail"):
        flavor.load(newer, details)
    pickled = {"format": "statsmodels-pickle", "estimator": "statsmodels.OLS"}
    pickled["packages"] = {"statsmodels": "9.9.0"}  # type: ignore[assignment]
    with pytest.raises(ModelFlavorError, match=r"saved with statsmodels 9\.9\.0 .*==9\.9\.0"):
        flavor.load(b"\x80\x05not a pickle", pickled)


def test_unfitted_model_is_refused(sqlite_client: Client, fair: Any) -> None:
    train, test = fair
    with pytest.raises(ModelFlavorError, match="fitted results"):
        sqlite_client.register_model(
            sm.OLS(train["rate_marriage"], train[NUMERIC_INPUTS]),
            "rate",
            input_example=test[NUMERIC_INPUTS].head(2),
        )
    assert sqlite_client.list_models() == []

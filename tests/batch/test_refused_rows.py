"""Rows the model itself refuses are bad rows, not a crash: a library that raises for a batch
(an encoder meeting a category it never saw, an imputer meeting an infinity) gets its rows
named with --on-bad-rows fail and set aside with the library's reason with skip, while every
other row is scored as the model scores it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from modelrail.batch.refusals import MAX_CALLS, find_refused
from modelrail.errors import BatchInputError, StoreUnavailableError
from modelrail.scoring.forms.record import PROBABILITY_ATOL
from tests.batch.conftest import Output, ScoringProject

NUMBERS = ["age", "yrs_married", "religious", "educ"]


def _survey() -> tuple[pd.DataFrame, pd.Series]:
    data = sm.datasets.fair.load_pandas().data
    frame = data[NUMBERS].copy()
    frame["job"] = "job" + data["occupation"].astype(int).astype(str)
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    return frame, (data["affairs"] > 0).astype(int)


def _scored_as_the_model(
    output: Output, model: Any, frame: pd.DataFrame, features: list[str], skipped: list[int]
) -> None:
    good = frame[~frame["id"].isin(skipped)]
    rows = {int(r["id"]): r for r in output.rows()}
    assert sorted(rows) == sorted(good["id"].tolist())
    proba = model.predict_proba(good[features])[:, 1]
    for row_id, probability in zip(good["id"], proba, strict=True):
        assert rows[int(row_id)]["probability"] == pytest.approx(
            probability, rel=0, abs=PROBABILITY_ATOL
        )


def _unseen_jobs(frame: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    changed = frame.copy()
    changed.loc[rows, "job"] = "astronaut"
    return changed


def _strict(scoring: ScoringProject) -> tuple[Any, pd.DataFrame, list[str]]:
    """``strict`` 1: an encoder that refuses a category it never saw (no fast form takes it)."""
    frame, target = _survey()
    features = [*NUMBERS, "job"]
    encode = ColumnTransformer([("job", OrdinalEncoder(), ["job"])], remainder="passthrough")
    model = make_pipeline(encode, HistGradientBoostingClassifier(max_iter=20, random_state=0))
    model.fit(frame[features], target)
    scoring.client.register_model(model, "strict", input_example=frame[features][:5])
    return model, frame, features


def test_rows_an_encoder_refuses_are_named_and_nothing_is_written(
    scoring: ScoringProject, batch_output: Output
) -> None:
    _, frame, _ = _strict(scoring)
    path = scoring.parquet("unseen.parquet", _unseen_jobs(frame, [700, 701, 2500]))
    spec = scoring.spec(batch_output, reference="strict:1", inputs=(path,), batch_rows=1000)
    with pytest.raises(BatchInputError) as refused:
        scoring.run(spec)
    message = refused.value.message
    assert message.startswith('input row 700 ({"id":700}): the model could not score it: ')
    assert "astronaut" in message and "ValueError" in message
    assert batch_output.rows() == []


def test_rows_an_encoder_refuses_are_set_aside_with_the_librarys_reason(
    scoring: ScoringProject, batch_output: Output
) -> None:
    model, frame, features = _strict(scoring)
    bad = [3, 700, 701, 2500, 6365]
    path = scoring.parquet("unseen.parquet", _unseen_jobs(frame, bad))
    spec = scoring.spec(
        batch_output, reference="strict:1", inputs=(path,), on_bad_rows="skip", batch_rows=1000
    )
    record = scoring.run(spec)
    assert (record.rows_written, record.rows_rejected) == (len(frame) - len(bad), len(bad))
    rejects = sorted(batch_output.rejects(), key=lambda r: int(r["row_number"]))
    assert [int(r["row_number"]) for r in rejects] == bad
    assert all("could not score it: ValueError" in r["reason"] for r in rejects)
    assert all("astronaut" in r["reason"] for r in rejects)
    _scored_as_the_model(batch_output, model, frame, features, bad)


def test_an_infinity_in_a_text_models_number_column_is_a_bad_row(
    scoring: ScoringProject, batch_output: Output
) -> None:
    frame, target = _survey()
    features = [*NUMBERS, "job"]
    encode = ColumnTransformer(
        [("job", OneHotEncoder(handle_unknown="ignore"), ["job"])],
        remainder=SimpleImputer(),
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame[features], target)
    scoring.client.register_model(model, "imputed", input_example=frame[features][:5])
    changed = frame.copy()
    changed.loc[[12, 13], "age"] = [np.inf, -np.inf]
    path = scoring.parquet("infinite.parquet", changed)
    spec = scoring.spec(batch_output, reference="imputed:1", inputs=(path,), on_bad_rows="skip")
    record = scoring.run(spec)
    assert record.rows_rejected == 2
    reasons = {int(r["row_number"]): r["reason"] for r in batch_output.rejects()}
    assert reasons == {12: "column 'age' is not a finite number"} | {
        13: "column 'age' is not a finite number"
    }
    _scored_as_the_model(batch_output, model, frame, features, [12, 13])


def test_rows_a_formula_model_names_are_set_aside_in_one_go_however_many(
    scoring: ScoringProject, batch_output: Output
) -> None:
    """statsmodels names the rows with a level it never saw: a quarter of the rows, far more
    than a search by halves could find within its budget."""
    frame, target = _survey()
    data = frame.assign(cheated=target)
    result = smf.logit("cheated ~ C(job) + age + np.log(yrs_married)", data).fit(disp=0)
    features = ["job", "age", "yrs_married"]
    scoring.client.register_model(result, "formula", input_example=frame[features][:5])
    bad = list(range(0, len(frame), 4))
    assert len(bad) > MAX_CALLS
    path = scoring.parquet("unseen.parquet", _unseen_jobs(frame, bad))
    spec = scoring.spec(
        batch_output, reference="formula:1", inputs=(path,), on_bad_rows="skip", batch_rows=4096
    )
    record = scoring.run(spec)
    assert (record.rows_written, record.rows_rejected) == (len(frame) - len(bad), len(bad))
    assert {r["reason"].split(",")[0] for r in batch_output.rejects()} == {
        "column 'job' has 'astronaut'"
    }
    good = frame[~frame["id"].isin(bad)]
    expected = result.predict(good[features]).to_numpy()
    rows = {int(r["id"]): r for r in batch_output.rows()}
    for row_id, probability in zip(good["id"], expected, strict=True):
        assert rows[int(row_id)]["probability"] == pytest.approx(probability, rel=1e-9)


# -- the search itself ----------------------------------------------------------------------


def _refusing(bad: set[int]) -> Any:
    calls: list[int] = []

    def score(positions: np.ndarray[Any, Any]) -> None:
        calls.append(len(positions))
        if bad & set(positions.tolist()):
            raise ValueError(f"refused {sorted(bad & set(positions.tolist()))[0]}")

    score.calls = calls  # type: ignore[attr-defined]
    return score


def test_the_search_finds_each_refused_row_with_few_calls() -> None:
    score = _refusing({5, 4000, 4001, 9999})
    found = find_refused(score, 10_000, ValueError("whole"), first_only=False)
    assert found.complete and found.positions == [5, 4000, 4001, 9999]
    assert found.reasons[0] == "the model could not score it: ValueError: refused 5"
    assert len(score.calls) < 4 * 2 * 14


def test_the_search_for_the_first_refused_row_stops_there() -> None:
    score = _refusing({300, 9000})
    found = find_refused(score, 10_000, ValueError("whole"), first_only=True)
    assert found.positions == [300]


def test_a_batch_refused_only_as_a_whole_is_not_blamed_on_a_row() -> None:
    def score(positions: np.ndarray[Any, Any]) -> None:
        if len(positions) > 100:
            raise ValueError("too many at once")

    found = find_refused(score, 1000, ValueError("whole"), first_only=False)
    assert not found.complete and found.positions == []


def test_the_search_gives_up_within_its_budget() -> None:
    score = _refusing(set(range(0, 100_000, 3)))
    found = find_refused(score, 100_000, ValueError("whole"), first_only=False)
    assert not found.complete and len(score.calls) == MAX_CALLS


def test_errors_that_are_not_refusals_are_raised() -> None:
    def score(positions: np.ndarray[Any, Any]) -> None:
        raise StoreUnavailableError("the store went away")

    with pytest.raises(StoreUnavailableError):
        find_refused(score, 10, ValueError("whole"), first_only=False)

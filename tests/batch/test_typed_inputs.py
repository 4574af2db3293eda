"""Batch scoring reads text columns and missing values as the model takes them, from Parquet,
CSV and SQL, and writes what the model itself predicts (statsmodels' ``fair`` survey, its
occupation codes as text)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelrail.errors import BatchInputError
from modelrail.scoring.forms.record import PROBABILITY_ATOL
from tests.batch.conftest import Output, ScoringProject, SQLiteOutput

NUMBERS = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]
TEXT = ["occupation", "occupation_husb"]


def _fair() -> tuple[pd.DataFrame, pd.Series]:
    data = sm.datasets.fair.load_pandas().data
    frame = data[NUMBERS].copy()
    for name in TEXT:
        frame[name] = "occ" + data[name].astype(int).astype(str)
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    return frame, (data["affairs"] > 0).astype(int)


def _by_id(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(row["id"]): row for row in rows}


def _assert_scored(output: Output, model: Any, frame: pd.DataFrame, features: list[str]) -> None:
    rows = _by_id(output.rows())
    assert sorted(rows) == sorted(frame["id"].tolist())
    expected = dict(zip(frame["id"], model.predict(frame[features]), strict=True))
    proba = dict(zip(frame["id"], model.predict_proba(frame[features])[:, 1], strict=True))
    for row_id, row in rows.items():
        assert row["prediction"] == expected[row_id]
        # Within the stated tolerance of the verified predictor form that batch may use.
        assert row["probability"] == pytest.approx(proba[row_id], rel=0, abs=PROBABILITY_ATOL)


@pytest.mark.parametrize("source", ["parquet", "csv", "sql"])
def test_a_pipeline_over_text_columns_scores_as_the_model_does(
    scoring: ScoringProject, batch_output: Output, source: str
) -> None:
    frame, target = _fair()
    features = NUMBERS + TEXT
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), TEXT),
            ("numbers", StandardScaler(), NUMBERS),
        ]
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500)).fit(frame[features], target)
    scoring.client.register_model(model, "fair", input_example=frame[features][:5])
    rows = frame.iloc[:400]
    if source == "sql":
        inputs: dict[str, Any] = {
            "query": "SELECT * FROM customers",
            "query_url": scoring.sqlite_input(rows),
        }
    else:
        made = (
            scoring.parquet("fair.parquet", rows)
            if source == "parquet"
            else scoring.csv("fair.csv", rows)
        )
        inputs = {"inputs": (made,)}
    record = scoring.run(scoring.spec(batch_output, reference="fair:1", batch_rows=128, **inputs))
    assert (record.rows_written, record.rows_rejected) == (400, 0)
    _assert_scored(batch_output, model, rows, features)


def test_missing_values_reach_a_model_that_scores_them(scoring: ScoringProject) -> None:
    frame, target = _fair()
    gaps = frame.copy()
    gaps.loc[::5, "age"] = np.nan
    gaps.loc[::11, "educ"] = np.nan
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(gaps[NUMBERS], target)
    scoring.client.register_model(model, "gaps", input_example=gaps[NUMBERS][:5])
    output = SQLiteOutput(scoring.root)
    path = scoring.parquet("gaps.parquet", gaps.iloc[:300])
    record = scoring.run(scoring.spec(output, reference="gaps:1", inputs=(path,), batch_rows=64))
    assert (record.rows_written, record.rows_rejected) == (300, 0)
    _assert_scored(output, model, gaps.iloc[:300], NUMBERS)


def test_a_missing_value_the_model_cannot_score_is_still_a_bad_row(
    scoring: ScoringProject,
) -> None:
    frame, target = _fair()
    model = LogisticRegression(max_iter=500).fit(frame[NUMBERS], target)
    scoring.client.register_model(model, "linear", input_example=frame[NUMBERS][:5])
    gaps = frame.iloc[:100].copy()
    gaps.loc[17, "age"] = np.nan
    output = SQLiteOutput(scoring.root)
    spec = scoring.spec(
        output, reference="linear:1", inputs=(scoring.parquet("gaps.parquet", gaps),)
    )
    with pytest.raises(BatchInputError, match=r"input row 17 .*column 'age'"):
        scoring.run(spec)

"""A row whose score comes out NaN or infinite is a bad row in batch too: named with
--on-bad-rows fail, set aside with its reason with skip; never written as a prediction with
empty probabilities. Gaussian naive Bayes is such a model: a finite feature of 1e308 overflows
its squared distance, and scikit-learn answers class 0 with probabilities NaN."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.naive_bayes import GaussianNB

from modelrail.errors import BatchInputError
from modelrail.scoring.predictor import UNSCORABLE
from tests.batch.conftest import FEATURES, ROWS, Output, ScoringProject

# scikit-learn warns of the overflow as it computes the NaN; what matters is what is written.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
OVERFLOWING = (17, 230)
BAD_INPUT = 40


def _bayes(scoring: ScoringProject) -> GaussianNB:
    train = scoring.models.train
    model = GaussianNB().fit(train, (train["f0"] + train["f1"] > 0).astype(int))
    scoring.client.register_model(model, "bayes", input_example=train[:5])
    return model


def _overflowing(scoring: ScoringProject) -> pd.DataFrame:
    frame = scoring.frame.copy()
    for row in OVERFLOWING:
        frame.loc[row, list(FEATURES)] = 1e308
    return frame


def test_an_unscorable_row_fails_the_run_naming_it_and_writes_nothing(
    scoring: ScoringProject, batch_output: Output
) -> None:
    model = _bayes(scoring)
    frame = _overflowing(scoring)
    assert np.isnan(model.predict_proba(frame[list(FEATURES)])[OVERFLOWING[0]]).all()
    path = scoring.parquet("huge.parquet", frame)
    spec = scoring.spec(batch_output, reference="bayes:1", inputs=(path,), batch_rows=50)
    with pytest.raises(BatchInputError) as refused:
        scoring.run(spec)
    assert f"input row {OVERFLOWING[0]} " in refused.value.message
    assert "not a finite number" in refused.value.message
    assert batch_output.rows() == []


def test_unscorable_rows_are_set_aside_with_their_reason_when_skipped(
    scoring: ScoringProject, batch_output: Output
) -> None:
    model = _bayes(scoring)
    frame = _overflowing(scoring)
    frame.loc[BAD_INPUT, "f1"] = np.nan  # a bad input beside the bad scores, in one batch
    spec = scoring.spec(
        batch_output,
        reference="bayes:1",
        inputs=(scoring.parquet("huge.parquet", frame),),
        on_bad_rows="skip",
        batch_rows=50,
    )
    record = scoring.run(spec)
    assert (record.rows_written, record.rows_rejected) == (ROWS - 3, 3)
    good = scoring.frame.drop(index=[*OVERFLOWING, BAD_INPUT])
    expected = model.predict_proba(good[list(FEATURES)])[:, 1]
    rows: dict[Any, dict[str, Any]] = {str(r["id"]): r for r in batch_output.rows()}
    assert sorted(rows) == sorted(str(i) for i in good["id"])
    for row_id, probability in zip(good["id"], expected, strict=True):
        assert rows[str(row_id)]["probability"] == pytest.approx(probability, rel=1e-9)
    rejects = sorted(batch_output.rejects(), key=lambda r: int(r["row_number"]))
    assert [(int(r["row_number"]), r["reason"]) for r in rejects] == [
        (OVERFLOWING[0], UNSCORABLE),
        (BAD_INPUT, "column 'f1' is empty or not a finite number"),
        (OVERFLOWING[1], UNSCORABLE),
    ]

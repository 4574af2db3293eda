"""The smoke test's rehearsal: a version's input example taken through exactly the conversions
production runs on it, so a version that passes the gate serves and batch-scores.

- the predictor serving and batch load (its compiled form where it has one), fed a float64
  matrix and, for a compiled form, one array per column;
- the server's request parsing: the example as a JSON body of records and as a CSV body,
  parsed by the functions the server runs and scored as the server scores;
- the batch scorer: the example as an Arrow batch of the signature's types, scored by the
  ``BatchScorer`` batch runs use.

Each path must give one prediction per row; a failure names the path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelrail.errors import InvalidInputError, ModelrailError
from modelrail.scoring.predictor import ScoringModel

Paths = Callable[[], list[Any]]


class RehearsalError(InvalidInputError):
    """One production path could not score the input example (the message names it)."""


def as_served(scoring: ScoringModel) -> Paths:
    """A call scoring the input example as the loaded predictor is fed in production; the
    smoke gate times it."""
    return _guarded([("as served", _predictor_path(scoring, _example_frame(scoring)))])


def through_conversions(scoring: ScoringModel) -> Paths:
    """A call scoring the input example through the server's request parsing (JSON and CSV)
    and the batch scorer; the inputs are made once, outside the call."""
    import orjson

    example = scoring.version.input_example
    frame = _example_frame(scoring)
    records = [dict(zip(example["columns"], row, strict=True)) for row in example["data"]]
    return _guarded(
        [
            ("a JSON request", _json_path(scoring, orjson.dumps({"inputs": records}))),
            ("a CSV request", _csv_path(scoring, frame.to_csv(index=False).encode())),
            ("batch scoring", _batch_path(scoring, frame)),
        ]
    )


def _example_frame(scoring: ScoringModel) -> Any:
    import pandas as pd

    example = scoring.version.input_example
    return pd.DataFrame(example["data"], columns=example["columns"])[list(scoring.columns)]


def _guarded(steps: list[tuple[str, Callable[[], list[Any]]]]) -> Paths:
    def predict() -> list[Any]:
        outputs = []
        for name, step in steps:
            try:
                outputs.extend(step())
            except ModelrailError as exc:
                raise RehearsalError(f"{name}: {exc.message}") from exc
            except Exception as exc:  # the user's model may raise anything
                raise RehearsalError(f"{name}: {type(exc).__name__}: {exc}") from exc
        return outputs

    return predict


def _predictor_path(scoring: ScoringModel, frame: Any) -> Callable[[], list[Any]]:
    if not scoring.numeric:
        return lambda: [scoring.score_frame(frame).predictions]
    matrix = frame.to_numpy(dtype=np.float64)
    columns = [np.ascontiguousarray(matrix[:, j]) for j in range(matrix.shape[1])]

    def predict() -> list[Any]:
        outputs = [scoring.score(matrix).predictions]
        by_columns = scoring.score_columns(columns)
        return outputs if by_columns is None else [*outputs, by_columns.predictions]

    return predict


def _json_path(scoring: ScoringModel, body: bytes) -> Callable[[], list[Any]]:
    from modelrail.serving.input_spec import InputSpec
    from modelrail.serving.inputs import Limits, matrix_from_json

    spec = InputSpec.from_signature(scoring.version.signature)

    def predict() -> list[Any]:
        parsed = matrix_from_json(body, spec, Limits(), mlflow=False)
        return [scoring.score_input(parsed).predictions]

    return predict


def _csv_path(scoring: ScoringModel, body: bytes) -> Callable[[], list[Any]]:
    from modelrail.serving.input_spec import InputSpec
    from modelrail.serving.inputs import Limits, matrix_from_csv

    spec = InputSpec.from_signature(scoring.version.signature)
    return lambda: [scoring.score_input(matrix_from_csv(body, spec, Limits())).predictions]


_ROW = "__modelrail_smoke_row"


def _batch_path(scoring: ScoringModel, frame: Any) -> Callable[[], list[Any]]:
    import pyarrow as pa

    from modelrail.batch.scorer import BatchScorer

    scorer = BatchScorer(scoring, (pa.field(_ROW, pa.int64()),), on_bad_rows="fail")

    def predict() -> list[Any]:
        # Made here, inside the guarded step: a column Arrow cannot type fails on this path.
        table = pa.Table.from_pandas(frame, preserve_index=False)
        rows = pa.array(np.arange(len(frame), dtype=np.int64))
        batch = table.append_column(_ROW, rows).combine_chunks().to_batches()[0]
        scored = scorer.score(batch, 0, "smoke-test")
        first = scorer.prediction_columns()[0]
        return [scored.output.column(first).to_numpy(zero_copy_only=False)]

    return predict

"""Input/output signatures and input examples, inferred from what the user passes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from modelrail.entities import ColumnSpec, Signature
from modelrail.errors import InvalidInputError

MAX_EXAMPLE_ROWS = 20


def example_columns(example: Any) -> tuple[list[str], list[str], list[list[Any]]]:
    """Column names, dtype names and up to ``MAX_EXAMPLE_ROWS`` rows of an input example."""
    import pandas as pd

    if isinstance(example, pd.Series):
        example = example.to_frame()
    if isinstance(example, pd.DataFrame):
        head = example.head(MAX_EXAMPLE_ROWS)
        names = [str(c) for c in head.columns]
        dtypes = [_dtype_name(head[c].dtype) for c in head.columns]
        rows = head.astype(object).where(head.notna(), None).values.tolist()
        return names, dtypes, [[_plain(v) for v in row] for row in rows]
    array = np.asarray(example)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidInputError(
            f"input_example must be a DataFrame or a 1-D/2-D array, got {array.ndim} dimensions"
        )
    first_rows = array[:MAX_EXAMPLE_ROWS]
    names = [str(i) for i in range(first_rows.shape[1])]
    dtypes = [_dtype_name(first_rows.dtype)] * first_rows.shape[1]
    return names, dtypes, [[_plain(v) for v in row] for row in first_rows.tolist()]


def infer_signature(model: Any, example: Any) -> tuple[Signature, dict[str, Any]]:
    """Signature from the example and from predicting it; also the stored example."""
    names, dtypes, rows = example_columns(example)
    model_input = _as_model_input(example)
    try:
        predictions = np.asarray(model.predict(model_input))
    except Exception as exc:  # the user's model may raise anything
        raise InvalidInputError(
            f"the model failed to predict its input_example: {type(exc).__name__}: {exc}"
        ) from exc
    nullable = _nullable_columns(model, model_input, names, rows)
    classes = getattr(model, "classes_", None)
    # A multi-output classifier has one classes_ array per output: its answers are labels,
    # one column per output, without one table of probabilities.
    per_output = isinstance(classes, list)
    has_proba = callable(getattr(model, "predict_proba", None)) and not per_output
    dtype = _dtype_name(predictions.dtype)
    width = predictions.shape[1] if predictions.ndim == 2 else 1
    outputs = (
        (ColumnSpec("prediction", dtype),)
        if width == 1
        else tuple(ColumnSpec(f"prediction_{j}", dtype) for j in range(width))
    )
    signature = Signature(
        inputs=tuple(ColumnSpec(n, d, n in nullable) for n, d in zip(names, dtypes, strict=True)),
        outputs=outputs,
        has_probabilities=has_proba,
        classes=tuple(_plain(c) for c in classes) if classes is not None and not per_output else (),
    )
    return signature, {"columns": names, "data": rows}


def _nullable_columns(
    model: Any, model_input: Any, names: list[str], rows: list[list[Any]]
) -> frozenset[str]:
    """The columns the model scores with a value missing: those missing somewhere in the
    example already, and those it scores when they are blanked (all at once first, which is
    the common answer either way, then one by one)."""
    present = {n for j, n in enumerate(names) if any(row[j] is None for row in rows)}
    untried = [j for j, n in enumerate(names) if n not in present]
    if not untried or _scores_with_blanks(model, model_input, untried):
        return frozenset(names)
    return frozenset(
        present | {names[j] for j in untried if _scores_with_blanks(model, model_input, [j])}
    )


def _scores_with_blanks(model: Any, model_input: Any, columns: list[int]) -> bool:
    import pandas as pd

    blanked: Any
    if isinstance(model_input, pd.DataFrame):
        blanked = model_input.copy()
        for j in columns:
            column = blanked.columns[j]
            numeric = blanked[column].dtype.kind in "fiu"
            blanked[column] = np.nan if numeric else pd.Series([None] * len(blanked), dtype=object)
    else:
        blanked = np.array(model_input, dtype=np.float64)
        blanked[:, columns] = np.nan
    proba = getattr(model, "predict_proba", None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a model may warn about what it is being tested on
            outputs = [np.asarray(model.predict(blanked))]
            if callable(proba):
                outputs.append(np.asarray(proba(blanked)))
    except Exception:  # the model refuses missing values: exactly what is being asked
        return False
    # Labels may stay finite while the probabilities behind them are NaN (a linear ONNX model):
    # both must be answers for the column to take missing values.
    return all(
        len(scored) == len(blanked)
        and (scored.dtype.kind not in "fc" or bool(np.isfinite(scored).all()))
        for scored in outputs
    )


def _as_model_input(example: Any) -> Any:
    import pandas as pd

    if isinstance(example, pd.DataFrame | pd.Series):
        return example.head(MAX_EXAMPLE_ROWS)
    array = np.asarray(example)
    return array.reshape(1, -1) if array.ndim == 1 else array[:MAX_EXAMPLE_ROWS]


def _dtype_name(dtype: Any) -> str:
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "bool"
    if kind in "iu":
        return "int64"
    if kind == "f":
        return "float64"
    if kind == "M":
        return "datetime"
    return "string" if kind in "OSU" else str(dtype)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)

"""Input frames as the tree libraries expect them, and the predictors that hand them in.

modelrail hands a flavor's predictor a pandas DataFrame of the signature's columns:
float64 / int64 / bool for numbers, object or pandas' ``str`` (Python strings, None or NaN
for missing) for text, or float64 throughout when the input came as a matrix. The
libraries want something else for text: XGBoost and LightGBM a pandas Categorical whose
categories are exactly the ones seen in training (the codes are what the trees split
on), CatBoost plain strings. ``InputColumns`` converts only the columns that need it, in
one vectorised pass, and leaves every other column uncopied.

A value that was not seen in training becomes a missing code for XGBoost and LightGBM,
which both send missing values down each split's learned default branch: LightGBM does
exactly this itself, and XGBoost 3.1+ would refuse the whole input instead. A numeric
column that arrives as objects (None for missing, as JSON gives) becomes float64 with NaN,
the missing value all three libraries handle natively.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from modelrail.errors import InvalidInputError

# The string CatBoost gets for a missing category. CatBoost refuses NaN there and asks
# for it "converted to string": str(nan) is "nan", what ``astype(str)`` makes of a missing
# value when a training frame is prepared, so such a model finds its own category for it;
# any other model sees an unseen category, which CatBoost scores from its priors.
MISSING_TEXT = "nan"


class InputColumns:
    """How a model's input columns are converted before it predicts.

    ``names``: the feature names it was trained with (None: trained on a bare matrix,
    which then passes through as float64). ``categories``: column -> the categories seen
    in training, in their training order. ``text``: columns passed as strings (CatBoost's
    categorical features)."""

    def __init__(
        self,
        names: Sequence[str] | None,
        categories: Mapping[str, Sequence[Any]] | None = None,
        text: Collection[str] = (),
    ) -> None:
        import pandas as pd

        self.names = None if names is None else tuple(names)
        self.text = frozenset(text)
        # Built once: every prediction reuses the same dtypes and their hash tables.
        self.dtypes = {
            name: pd.CategoricalDtype(pd.Index(list(values)), ordered=False)
            for name, values in (categories or {}).items()
        }

    def frame(self, X: Any) -> Any:
        """``X`` (a DataFrame or a matrix) as the library takes it: a DataFrame in
        training column order, or a float64 matrix for a model trained on one."""
        import pandas as pd

        if self.names is None:
            if isinstance(X, pd.DataFrame):
                X = X.to_numpy(dtype=np.float64, na_value=np.nan)
            return np.asarray(X, dtype=np.float64)
        names = list(self.names)
        if not isinstance(X, pd.DataFrame):
            return self._converted(pd.DataFrame(np.asarray(X), columns=names, copy=False))
        if list(X.columns) != names and set(names) <= set(X.columns):
            X = X[names]
        return self._converted(X)

    def _converted(self, frame: Any) -> Any:
        dtypes = self.dtypes
        changed: dict[str, Any] = {}
        for name in frame.columns:
            column = frame[name]
            if name in dtypes:
                changed[name] = _categorical(column, dtypes[name])
            elif name in self.text:
                changed[name] = _text(column)
            elif not _plain_numbers(column.dtype):
                changed[name] = _numbers(column, name)
        if not changed:
            return frame
        out = frame.copy(deep=False)
        for name, values in changed.items():
            out[name] = values
        return out


def _plain_numbers(dtype: Any) -> bool:
    """numpy's own float / int / bool dtypes, which every library takes as they are."""
    return isinstance(dtype, np.dtype) and dtype.kind in "biuf"


def _categorical(column: Any, dtype: Any) -> Any:
    import pandas as pd

    # Codes straight from the training categories: a value they lack (or a missing one)
    # gets -1, pandas' missing code. Building pd.Categorical(values, dtype=...) would do
    # the same but warns that unseen values are deprecated there.
    codes = dtype.categories.get_indexer(column)
    return pd.Categorical.from_codes(codes, dtype=dtype)


def _text(column: Any) -> np.ndarray[Any, Any]:
    """Strings for a CatBoost categorical column. Integers pass as they are (CatBoost reads
    3 and "3" as the same category); floats that hold whole numbers (a matrix made every
    column float64) are written as integers, so 3.0 is the category "3" again."""
    values = column.to_numpy()
    if values.dtype.kind in "iu":
        return np.asarray(values)
    if values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        text = values.astype(str).astype(object)
        text[whole] = values[whole].astype(np.int64).astype(str)
        return np.asarray(text)
    text = np.asarray(column.to_numpy(dtype=object), dtype=object)
    missing = np.asarray(column.isna())
    if missing.any():
        text = text.copy()
        text[missing] = MISSING_TEXT
    return text


def _numbers(column: Any, name: str) -> Any:
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"column {name!r} must hold numbers (or be empty for a missing value): {exc}"
        ) from exc


class FramePredictor:
    """The base of the tree flavors' predictors: ``feature_names_in_`` exists only for a
    model trained with column names, which is how modelrail knows to hand it a DataFrame
    (a model trained on a bare matrix gets a float64 matrix)."""

    feature_names_in_: np.ndarray[Any, Any]

    def __init__(self, columns: InputColumns) -> None:
        self.columns = columns
        if columns.names is not None:
            self.feature_names_in_ = np.asarray(columns.names, dtype=object)


class EstimatorPredictor(FramePredictor):
    """A model whose ``predict`` gives its score (a scikit-learn regressor or ranker, a
    LightGBM Booster): as float64 (XGBoost computes in float32; float64 is what every
    flavor gives)."""

    def __init__(self, model: Any, columns: InputColumns) -> None:
        super().__init__(columns)
        self.model = model

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.model.predict(self.columns.frame(X)), dtype=np.float64)


class EstimatorClassifier(EstimatorPredictor):
    """A classifier with a scikit-learn API: its own labels (1-D: CatBoost gives a column
    for several classes) and probabilities as a C-contiguous float64 matrix."""

    def __init__(self, model: Any, columns: InputColumns) -> None:
        super().__init__(model, columns)
        self.classes_ = np.asarray(model.classes_)

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.model.predict(self.columns.frame(X))).reshape(-1)

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        found = self.model.predict_proba(self.columns.frame(X))
        return np.ascontiguousarray(found, dtype=np.float64)


class BoosterClassifier(FramePredictor):
    """A bare booster trained for classes, which knows only labels 0..k-1: the subclass
    gives the probabilities, the label is decided from them as the libraries' own
    classifiers decide it (above 0.5 for two classes, else the most probable)."""

    def __init__(self, columns: InputColumns, count: int) -> None:
        super().__init__(columns)
        self.classes_ = np.arange(count)

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        proba = self.predict_proba(X)
        if len(self.classes_) == 2:
            return (proba[:, 1] > 0.5).astype(np.int64)
        return np.asarray(np.argmax(proba, axis=1))


def two_classes(positive: Any) -> np.ndarray[Any, Any]:
    """(n, 2) probabilities from the positive class's."""
    p = np.asarray(positive, dtype=np.float64).reshape(-1)
    return np.ascontiguousarray(np.column_stack([1.0 - p, p]))

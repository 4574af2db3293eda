"""The rows a candidate form is verified (and timed) on: the version's input example plus
generated rows spread around it.

- numbers: half drawn from the example's own values (where trees split), half spread
  around the example's centre, wider than the example itself; whole numbers for integer
  columns, True/False for booleans;
- text: drawn from the values seen in the example and from the categories the model knows
  (a one-hot or ordinal encoder's, a tree library's categorical columns), plus a few values
  no one has seen;
- missing values (NaN, None) only in the columns the signature marks nullable.

Everything is seeded: the same version gets the same sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelrail.entities import Signature

GENERATED_ROWS = 1000
_MISSING_SHARE = 0.1
_UNSEEN_SHARE = 0.05
UNSEEN_TEXT = "modelrail-unseen"


@dataclass(frozen=True)
class Sample:
    """The same rows as production hands them to a predictor: a float64 matrix in signature
    order for all-numeric models, else a DataFrame of the signature's types."""

    frame: Any  # pandas DataFrame, signature column order
    numeric: bool

    @property
    def rows(self) -> int:
        return len(self.frame)

    def model_input(self) -> Any:
        return self.frame.to_numpy(dtype=np.float64) if self.numeric else self.frame

    def missing(self) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which rows have a missing value somewhere."""
        return np.asarray(self.frame.isna().to_numpy().any(axis=1), dtype=bool)

    def without(self, rows: np.ndarray[Any, np.dtype[np.bool_]]) -> Sample:
        return Sample(self.frame[~rows].reset_index(drop=True), self.numeric)

    def head(self, rows: int) -> Sample:
        return Sample(self.frame.iloc[:rows].reset_index(drop=True), self.numeric)

    def repeated(self, rows: int) -> Sample:
        """At least ``rows`` rows, by repeating this sample (for timing a large batch)."""
        import pandas as pd

        times = max(1, -(-rows // max(1, self.rows)))
        frame = pd.concat([self.frame] * times, ignore_index=True).iloc[:rows]
        return Sample(frame.reset_index(drop=True), self.numeric)

    def one_rows(self, count: int) -> list[Any]:
        """Up to ``count`` single-row inputs, as a server hands them over."""
        rows = min(count, self.rows)
        if self.numeric:
            matrix = self.model_input()
            return [matrix[i : i + 1] for i in range(rows)]
        return [self.frame.iloc[i : i + 1].reset_index(drop=True) for i in range(rows)]


def verification_sample(
    signature: Signature,
    example: Mapping[str, Any],
    model: Any,
    *,
    generated: int = GENERATED_ROWS,
    unseen: bool = True,
    missing: bool = True,
    seed: int = 0,
) -> Sample:
    import pandas as pd

    columns = [c.name for c in signature.inputs]
    rows = example.get("data", []) if isinstance(example, Mapping) else []
    base = pd.DataFrame(rows, columns=list(example.get("columns", columns)))
    base = base.reindex(columns=columns)
    rng = np.random.default_rng(seed)
    known = model_categories(model)
    data: dict[str, Any] = {}
    for spec in signature.inputs:
        seen = base[spec.name].tolist()
        values = _generated(spec.dtype, seen, known.get(spec.name, ()), generated, rng, unseen)
        if missing and spec.nullable:
            gaps = rng.random(generated) < _MISSING_SHARE
            values = values.astype(object) if spec.dtype == "bool" else values
            values[gaps] = None if values.dtype == object else np.nan
        data[spec.name] = np.concatenate([_typed(spec.dtype, seen), values])
    frame = pd.DataFrame(data, columns=columns)
    numeric = all(c.dtype in ("float64", "int64", "bool") for c in signature.inputs)
    return Sample(frame, numeric)


def _generated(
    dtype: str,
    seen: list[Any],
    categories: Sequence[Any],
    count: int,
    rng: np.random.Generator,
    unseen: bool,
) -> np.ndarray[Any, Any]:
    present = [v for v in seen if v is not None and v == v]
    if dtype == "bool":
        return rng.random(count) < 0.5
    if dtype in ("float64", "int64"):
        observed = np.asarray(present, dtype=np.float64) if present else np.zeros(1)
        centre = float(observed.mean())
        spread = max(float(observed.std()), abs(centre) * 0.5) + 1e-3
        spread_out = centre + rng.normal(size=count) * spread * 2
        drawn = rng.choice(observed, size=count)
        values = np.where(rng.random(count) < 0.5, drawn, spread_out)
        return np.round(values) if dtype == "int64" else values
    pool = list(dict.fromkeys([*map(str, present), *(str(c) for c in categories)]))
    if not pool:
        pool = [UNSEEN_TEXT]
    values = np.asarray(rng.choice(np.asarray(pool, dtype=object), size=count), dtype=object)
    if unseen:
        values[rng.random(count) < _UNSEEN_SHARE] = UNSEEN_TEXT
    return values


def _typed(dtype: str, values: list[Any]) -> np.ndarray[Any, Any]:
    if dtype in ("float64", "int64"):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if dtype == "bool":
        if any(v is None for v in values):
            return np.asarray(values, dtype=object)
        return np.asarray(values, dtype=bool)
    return np.asarray(values, dtype=object)


def model_categories(model: Any) -> dict[str, list[Any]]:
    """Text categories the model knows by input column: a scikit-learn encoder's inside a
    pipeline or column transformer, or a tree library's categorical columns."""
    found: dict[str, list[Any]] = {}
    dtypes = getattr(getattr(model, "columns", None), "dtypes", None)
    if isinstance(dtypes, Mapping):
        for name, dtype in dtypes.items():
            found[str(name)] = list(getattr(dtype, "categories", []))
    for step in _steps(model):
        transformers = getattr(step, "transformers_", None)
        if not transformers:
            continue
        for _, transformer, selected in transformers:
            categories = _encoder_categories(transformer)
            if categories is None or not _names(selected):
                continue
            for name, values in zip(selected, categories, strict=False):
                found.setdefault(str(name), []).extend(v for v in values if isinstance(v, str))
    return found


def _steps(model: Any) -> list[Any]:
    steps = getattr(model, "steps", None)
    return [s for _, s in steps] if isinstance(steps, list) else [model]


def _encoder_categories(transformer: Any) -> list[Any] | None:
    for step in _steps(transformer):
        categories = getattr(step, "categories_", None)
        if isinstance(categories, list):
            return [list(c) for c in categories]
    return None


def _names(selected: Any) -> bool:
    return isinstance(selected, list | tuple) and all(isinstance(s, str) for s in selected)

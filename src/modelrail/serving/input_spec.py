"""What a served model accepts, read once from its signature: the columns in order, their
types, which may be missing, and how request rows become the model's input.

All-numeric models get a float64 matrix built by numpy in one call (the hot path: no pandas);
models with text or date columns get ``Columns``, one numpy array per column of the
signature's type (a pandas DataFrame only if the predictor needs one). Either way nothing is
coerced: a JSON string is never read as a number, a boolean is a number only in a boolean
column, and ``null`` only passes in a column the model scores missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from typing import Any

import numpy as np

from modelrail.entities import Signature
from modelrail.errors import InvalidRequestError
from modelrail.scoring.columns import Columns
from modelrail.scoring.compiled import FloatMatrix

NUMERIC = frozenset({"float64", "int64", "bool"})


@dataclass(frozen=True)
class InputSpec:
    columns: tuple[str, ...]
    dtypes: tuple[str, ...]
    nullable: frozenset[str] = frozenset()

    @classmethod
    def from_signature(cls, signature: Signature) -> InputSpec:
        inputs = signature.inputs
        return cls(
            tuple(c.name for c in inputs),
            tuple(c.dtype for c in inputs),
            frozenset(c.name for c in inputs if c.nullable),
        )

    # Read on every request: worked out once (a frozen dataclass keeps its __dict__ for these).
    @cached_property
    def numeric(self) -> bool:
        return all(d in NUMERIC for d in self.dtypes)

    @cached_property
    def pick(self) -> Callable[[Any], tuple[Any, ...]]:
        """A record's values in column order, as a tuple (KeyError for a missing column)."""
        if len(self.columns) == 1:
            (only,) = self.columns
            return lambda record: (record[only],)
        return itemgetter(*self.columns)

    @cached_property
    def booleans(self) -> frozenset[str]:
        return frozenset(n for n, d in zip(self.columns, self.dtypes, strict=True) if d == "bool")

    @cached_property
    def integer_positions(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.dtypes) if d == "int64")

    def reordered(self, names: tuple[str, ...]) -> InputSpec:
        """The same columns in the order a request gave them."""
        kinds = dict(zip(self.columns, self.dtypes, strict=True))
        return InputSpec(names, tuple(kinds[n] for n in names), self.nullable)


def numeric_matrix(
    rows: list[Any], parsed: np.ndarray[Any, Any], spec: InputSpec, where: str
) -> FloatMatrix | None:
    """``rows`` (already parsed by numpy into ``parsed``) as float64, with ``null`` as NaN in
    the columns that may be missing; None when they hold something else than numbers."""
    if parsed.dtype.kind in "biu":
        return parsed.astype(np.float64, copy=False)
    if parsed.dtype.kind == "f":
        return _whole_in_integer_columns(parsed, spec)
    if parsed.dtype != object or not spec.nullable:
        return None
    # Only requests holding a null come here: a per-value look is affordable.
    nullable = [c in spec.nullable for c in spec.columns]
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) != len(spec.columns):
            return None
        for value, may_miss in zip(row, nullable, strict=True):
            if value is None:
                if not may_miss:
                    return None
            elif isinstance(value, str) or not isinstance(value, int | float):
                return None
    return _whole_in_integer_columns(np.array(rows, dtype=np.float64), spec)


def _whole_in_integer_columns(matrix: Any, spec: InputSpec) -> FloatMatrix:
    for position in spec.integer_positions:
        if matrix.ndim == 2 and position < matrix.shape[1]:
            _whole_numbers(spec.columns[position], matrix[:, position])
    return matrix  # type: ignore[no-any-return]


def check_finite(matrix: FloatMatrix, spec: InputSpec) -> FloatMatrix:
    """NaN stands for a missing value, allowed where the model scores one; infinity never."""
    finite = np.isfinite(matrix)
    if finite.all():
        return matrix
    allowed = np.array([c in spec.nullable for c in spec.columns])
    bad = ~finite & ~(np.isnan(matrix) & allowed)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InvalidRequestError(
            f"row {r}, column {spec.columns[c]!r}: missing value (null); this model cannot "
            "score a row without it",
            field=spec.columns[c],
        )
    return matrix


def typed_columns(rows: list[Any], spec: InputSpec, where: str) -> Columns:
    """Rows as one array per signature column, each of its type."""
    width = len(spec.columns)
    for r, row in enumerate(rows):
        if not isinstance(row, list | tuple):
            raise InvalidRequestError(
                f'"{where}[{r}]" must be a list of values', field=f"{where}[{r}]"
            )
        if len(row) != width:
            raise InvalidRequestError(
                f'"{where}[{r}]" has {len(row)} values; expected {width}', field=f"{where}[{r}]"
            )
    values = list(zip(*rows, strict=True)) if rows else [()] * width
    return Columns(
        spec.columns,
        tuple(
            _column(name, dtype, list(values[j]), name in spec.nullable)
            for j, (name, dtype) in enumerate(zip(spec.columns, spec.dtypes, strict=True))
        ),
        complete=not any(None in row for row in rows),
    )


_NUMBER_TYPES = frozenset({int, float})
_TEXT_TYPES = frozenset({str})


def _column(name: str, dtype: str, values: list[Any], nullable: bool) -> Any:
    # One C-level pass over the values' types settles the usual request; the per-value
    # checks below run only to name what is wrong, or for booleans and dates.
    kinds = set(map(type, values))
    if dtype in ("float64", "int64") and kinds <= _NUMBER_TYPES:
        if dtype == "float64" or float not in kinds:
            return np.array(values, dtype=np.float64 if dtype == "float64" else np.int64)
        # 3.0 is how many JSON writers send the whole number 3; 3.5 is not a count.
        return _whole_numbers(name, np.array(values, dtype=np.float64)).astype(np.int64)
    if dtype not in ("float64", "int64", "bool", "datetime") and kinds <= _TEXT_TYPES:
        return np.array(values, dtype=object)
    missing = [i for i, v in enumerate(values) if v is None]
    if missing and not nullable:
        raise InvalidRequestError(
            f"row {missing[0]}, column {name!r}: missing value (null); this model cannot "
            "score a row without it",
            field=name,
        )
    if dtype in ("float64", "int64"):
        _expect(
            name,
            values,
            lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "a number",
        )
        cleaned = [np.nan if v is None else v for v in values]
        numbers = np.array(cleaned, dtype=np.float64)  # a null makes it float (NaN)
        return _whole_numbers(name, numbers) if dtype == "int64" else numbers
    if dtype == "bool":
        _expect(name, values, lambda v: isinstance(v, bool) or v in (0, 1), "true or false")
        return np.array(
            [None if v is None else bool(v) for v in values], dtype=object if missing else np.bool_
        )
    if dtype == "datetime":
        return _datetimes(name, values)
    _expect(name, values, lambda v: isinstance(v, str), "text")
    return np.array(values, dtype=object)


def _whole_numbers(name: str, numbers: Any) -> Any:
    """``numbers`` unchanged when every value present is whole (missing ones are NaN)."""
    present = ~np.isnan(numbers)
    outside = (numbers != np.floor(numbers)) | ~(np.abs(numbers) < 2.0**63)  # inf too
    fractional = np.flatnonzero(present & outside)
    if fractional.size:
        r = int(fractional[0])
        raise InvalidRequestError(
            f"row {r}, column {name!r}: expected a whole number within 64 bits (the model "
            f"was trained on integers), got {float(numbers[r])!r}",
            field=name,
        )
    return numbers


def _expect(name: str, values: list[Any], accepts: Any, what: str) -> None:
    for r, value in enumerate(values):
        if value is not None and not accepts(value):
            shown = "null" if value is None else type(value).__name__
            if isinstance(value, bool):
                shown = str(value).lower()
            raise InvalidRequestError(
                f"row {r}, column {name!r}: expected {what}, got {shown}", field=name
            )


def _datetimes(name: str, values: list[Any]) -> Any:
    import pandas as pd

    _expect(name, values, lambda v: isinstance(v, str), "a date and time in ISO 8601 text")
    try:
        parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError(
            f"column {name!r}: not a date and time in ISO 8601 text ({exc})", field=name
        ) from exc
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy()

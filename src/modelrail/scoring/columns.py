"""``Columns``: a request's rows as one numpy array per signature column, for models with
text or date inputs.

A pandas DataFrame costs several hundred microseconds to build and pick apart again for a
one-row request, more than an ONNX graph takes to score it. A form that takes one input per
column (``takes_columns``) is fed these arrays as they are; everything else gets the DataFrame
(``to_frame``), with the very same column types, built only when it is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


@dataclass(frozen=True, eq=False)
class Columns:
    """Values per column, in signature order: float64 or int64 numbers (NaN for a missing
    number), booleans (objects with None when one is missing), numpy datetimes, and text
    as an object array of ``str`` with None for a missing value."""

    names: tuple[str, ...]
    arrays: tuple[Array, ...]
    # True when the rows are known to hold no missing value (the request had no null).
    complete: bool = False

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def items(self) -> Iterator[tuple[str, Array]]:
        return zip(self.names, self.arrays, strict=True)

    def select(self, names: tuple[str, ...] | list[str]) -> Columns:
        """The same rows with the columns ``names``, in that order."""
        index = {name: j for j, name in enumerate(self.names)}
        chosen = tuple(self.arrays[index[name]] for name in names)
        return Columns(tuple(names), chosen, self.complete)

    def take(self, rows: Array) -> Columns:
        """The rows a boolean mask (or index array) selects."""
        return Columns(self.names, tuple(array[rows] for array in self.arrays), self.complete)

    def missing_rows(self) -> Array | None:
        """Rows with a missing value in any column, as a boolean mask; None when none is."""
        found: Array | None = None
        for array in self.arrays:
            if array.dtype.kind == "f":
                gaps = np.isnan(array)
            elif array.dtype == object:
                gaps = np.fromiter((v is None for v in array), dtype=bool, count=len(array))
            elif array.dtype.kind == "M":
                gaps = np.isnat(array)
            else:
                continue
            found = gaps if found is None else found | gaps
        return found if found is not None and found.any() else None

    def largest(self) -> float:
        """The largest magnitude among the float columns (NaN if one holds a NaN)."""
        floats = [a for a in self.arrays if a.dtype.kind == "f"]
        if not floats or not len(self):
            return 0.0
        joined = floats[0] if len(floats) == 1 else np.concatenate(floats)
        return float(np.abs(joined).max())

    def numbers(self) -> Array | None:
        """The numeric columns side by side as float64 (None when there is none)."""
        numeric = [a for a in self.arrays if a.dtype.kind in "fiu"]
        if not numeric:
            return None
        return np.column_stack([a.astype(np.float64, copy=False) for a in numeric])

    @cached_property
    def frame(self) -> Any:
        import pandas as pd

        # The dict holds the columns in signature order: columns= would make pandas reindex.
        return pd.DataFrame(dict(self.items()))

    def to_frame(self) -> Any:
        """A pandas DataFrame with these columns and types (built once, then kept)."""
        return self.frame

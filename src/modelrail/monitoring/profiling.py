"""Computing profiles in one streaming pass over Arrow record batches (``monitoring.profiles``
is the format).

Memory stays bounded whatever the data's length: a numeric column keeps its count, running
mean and sum of squared deviations (merged batch by batch as Chan et al. do, which stays
exact where a raw sum of squares loses everything to rounding), min, max and a sample of at
most 20,000 values: those with the smallest keys drawn from a seeded generator, one key per
row in row order. The keys of a row do not depend on where batches split, so neither does
the sample: percentiles, edges and proportions come out the same for any batch size, and
are exact below 20,000 values. A text column keeps value counts (Arrow's value_counts and
group_by per batch); past 10,000 distinct values the least frequent are folded into "other",
so counts of very high-cardinality columns are approximate. Wide tables get smaller samples
per column and at most ``MAX_COLUMNS`` columns, so memory stays under ~100 MB and the
profile small.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.batch import arrays
from modelrail.monitoring.profiles import (
    CATEGORICAL,
    NUMERIC,
    ColumnProfile,
    DatasetProfile,
    bin_counts,
)

__all__ = [
    "MAX_COLUMNS",
    "ColumnProfiler",
    "ProfileBuilder",
    "label_text",
    "profile_predictions",
]


MAX_COLUMNS = 200
MAX_CATEGORIES = 50
MAX_VALUE_LENGTH = 200
SAMPLE_SIZE = 20_000
_MIN_SAMPLE = 2_000
_SAMPLE_BUDGET = 4_000_000  # sampled values over all numeric columns (16 bytes each)
_TRACKED = 10_000
_MIN_TRACKED = 1_000
_TRACKED_BUDGET = 1_000_000  # distinct values tracked over all text columns
_SEED = 19
# Six significant digits: percentiles to a millionth of their size, a profile half as long.
_DIGITS = 6
_BINARY = ("binary", "large_binary", "binary_view")
_PANDAS_UNNAMED_INDEX = re.compile(r"__index_level_\d+__")


def kind_of(arrow_type: pa.DataType) -> str | None:
    """NUMERIC, CATEGORICAL, or None for types a profile leaves out (nested, binary)."""
    types = pa.types
    if types.is_dictionary(arrow_type):
        return kind_of(arrow_type.value_type)
    if (
        types.is_integer(arrow_type)
        or types.is_floating(arrow_type)
        or types.is_boolean(arrow_type)
    ):
        return NUMERIC
    if types.is_nested(arrow_type) or str(arrow_type) in _BINARY:
        return None
    if types.is_fixed_size_binary(arrow_type):
        return None
    if types.is_string(arrow_type) or types.is_large_string(arrow_type):
        return CATEGORICAL
    try:  # anything else as its text, if Arrow can write it as text
        label_text(pa.nulls(0, arrow_type))
    except (pa.ArrowException, ValueError, TypeError):
        return None
    return CATEGORICAL


class _NumericColumn:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0
        self.missing = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.keys = np.empty(0)
        self.values = np.empty(0)
        self.threshold = math.inf  # keys at or above it can no longer enter the sample

    def update(self, array: Any, keys: np.ndarray[Any, Any]) -> None:
        values = _floats(array)
        finite = np.isfinite(values)
        kept = int(np.count_nonzero(finite))
        self.missing += len(values) - kept
        if kept == 0:
            return
        if kept < len(values):
            values, keys = values[finite], keys[finite]
        mean = float(values.mean())
        # Not np.dot: BLAS may start threads of its own, on the scoring thread of a batch run.
        m2 = float(np.square(values - mean).sum())
        total = self.count + kept
        delta = mean - self.mean
        self.mean += delta * kept / total
        self.m2 += m2 + delta * delta * self.count * kept / total
        self.count = total
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        self._sample(keys, values)

    def _sample(self, keys: np.ndarray[Any, Any], values: np.ndarray[Any, Any]) -> None:
        if self.threshold < math.inf:
            entering = keys < self.threshold
            keys, values = keys[entering], values[entering]
            if len(keys) == 0:
                return
        self.keys = np.concatenate([self.keys, keys])
        self.values = np.concatenate([self.values, values])
        # Cut back to the smallest keys once twice as many are held: a partition every few
        # batches rather than every batch. What is cut can never be among the smallest.
        if len(self.keys) > 2 * self.capacity:
            self._keep_smallest()

    def _keep_smallest(self) -> None:
        if len(self.keys) > self.capacity:
            smallest = np.argpartition(self.keys, self.capacity - 1)[: self.capacity]
            self.keys, self.values = self.keys[smallest], self.values[smallest]
            self.threshold = float(self.keys.max())

    def finish(self) -> ColumnProfile:
        if self.count == 0:
            return ColumnProfile(NUMERIC, 0, self.missing)
        self._keep_smallest()
        sample = np.sort(self.values)
        # Percentiles that are values of the data, so a discrete column (counts, flags) gets
        # bins at its own values rather than between them.
        quantiles = np.quantile(sample, np.linspace(0.0, 1.0, 101), method="inverted_cdf")
        # The true extremes, which a sample may have missed.
        quantiles[0], quantiles[-1] = self.low, self.high
        quantiles = _rounded(quantiles)
        edges = np.unique(quantiles[::10])
        if quantiles[90] == quantiles[100]:
            # A tenth or more of the values are the maximum (a flag, a count, a capped value):
            # it gets a bin of its own, [max, max], rather than sharing the one below.
            edges = np.append(edges, edges[-1])
        shares = bin_counts(sample, edges.tolist()) / len(sample)
        std = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0
        return ColumnProfile(
            NUMERIC,
            self.count,
            self.missing,
            mean=_finite(self.mean),
            std=_finite(std),
            min=float(quantiles[0]),
            max=float(quantiles[-1]),
            quantiles=tuple(quantiles.tolist()),
            edges=tuple(edges.tolist()),
            proportions=tuple(_rounded(shares).tolist()),
        )


class _CategoricalColumn:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.count = 0
        self.missing = 0
        self.folded = 0  # values dropped from tracking (counted in "other")
        self.values: pa.Array | None = None  # the distinct values tracked, as text
        self.counts = np.zeros(0, dtype=np.int64)  # how often each was seen

    def update(self, array: Any) -> None:
        array = _arrow(array)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        nulls = array.null_count
        self.missing += nulls
        self.count += len(array) - nulls
        if nulls == len(array):
            return
        # Counted as they are, then only the distinct values written as text (a label of
        # numbers is counted as numbers, not as a million strings).
        found = pc.value_counts(pc.drop_null(array) if nulls else array)
        values = label_text(found.field("values"))
        counts = arrays.to_numpy(found.field("counts")).astype(np.int64)
        if self.values is not None:
            # Values seen before add to their counts (a hash lookup per distinct value of the
            # batch); the others are appended, in the order they first appear.
            where = pc.index_in(values, value_set=self.values)
            seen = arrays.valid(where)
            positions = arrays.to_numpy(where)[seen].astype(np.int64)
            known = self.counts + np.bincount(
                positions, weights=counts[seen], minlength=len(self.counts)
            ).astype(np.int64)
            new = values.filter(arrays.from_numpy(~seen, pa.bool_()))
            values = pa.concat_arrays([self.values, new])
            counts = np.concatenate([known, counts[~seen]])
        if len(counts) > self.capacity:
            # The most frequent are kept (ties: the first seen); the rest is "other".
            order = np.argsort(-counts, kind="stable")
            self.folded += int(counts[order[self.capacity :]].sum())
            kept = np.sort(order[: self.capacity])
            values, counts = values.take(arrays.from_numpy(kept, pa.int64())), counts[kept]
        self.values, self.counts = values, counts

    def finish(self) -> ColumnProfile:
        if self.count == 0 or self.values is None:
            return ColumnProfile(CATEGORICAL, 0, self.missing)
        # A value too long to be a category (free text) is counted in "other": a profile
        # stays small, and a monitor finds such values outside the kept ones anyway.
        short = arrays.to_numpy(pc.utf8_length(self.values)) <= MAX_VALUE_LENGTH
        counts = self.counts[short]
        values = self.values.filter(arrays.from_numpy(short, pa.bool_()))
        table = pa.Table.from_arrays(
            [values, arrays.from_numpy(counts, pa.int64())], ["value", "n"]
        )
        # Most frequent first; ties by value, so the order never depends on batch sizes.
        order = pc.sort_indices(table, sort_keys=[("n", "descending"), ("value", "ascending")])
        top = arrays.to_numpy(order)[:MAX_CATEGORIES]
        texts = values.take(arrays.from_numpy(top, pa.int64())).to_pylist()
        shares = _rounded(counts[top] / self.count).tolist()
        other = max(0.0, 1.0 - int(counts[top].sum()) / self.count)
        return ColumnProfile(
            CATEGORICAL,
            self.count,
            self.missing,
            frequencies=dict(zip(texts, shares, strict=True)),
            other=float(_rounded(np.array([other]))[0]),
        )


class ColumnProfiler:
    """One column (a model's predictions, say) profiled batch by batch: ``update`` with
    arrays (Arrow, numpy, lists), then ``finish``."""

    def __init__(self, kind: str, *, seed: int = _SEED) -> None:
        if kind not in (NUMERIC, CATEGORICAL):
            raise ValueError(f"kind must be {NUMERIC!r} or {CATEGORICAL!r}, not {kind!r}")
        self.kind = kind
        self._rng = np.random.default_rng(seed)
        self._numeric = _NumericColumn(SAMPLE_SIZE) if kind == NUMERIC else None
        self._categorical = _CategoricalColumn(_TRACKED) if kind == CATEGORICAL else None

    def update(self, values: Any) -> None:
        array = _arrow(values)
        if self._numeric is not None:
            self._numeric.update(array, self._rng.random(len(array)))
        elif self._categorical is not None:
            self._categorical.update(array)

    def finish(self) -> ColumnProfile:
        column = self._numeric or self._categorical
        assert column is not None
        return column.finish()


class ProfileBuilder:
    """A table profiled batch by batch: ``update`` with each RecordBatch (or Table) in row
    order, then ``finish``. The columns are those of ``schema`` (else of the first batch);
    an unnamed pandas index (``__index_level_0__``) is not data and is left out, as the
    dataset fingerprint leaves it out."""

    def __init__(self, schema: pa.Schema | None = None, *, max_columns: int = MAX_COLUMNS) -> None:
        self.max_columns = max_columns
        self._rng = np.random.default_rng(_SEED)
        self._columns: dict[str, _NumericColumn | _CategoricalColumn] = {}
        self._truncated = 0
        self._rows = 0
        self._started = False
        if schema is not None:
            self.start(schema)

    def start(self, schema: pa.Schema) -> None:
        """Begin again with the columns of ``schema`` (what was seen before is dropped)."""
        self._rng = np.random.default_rng(_SEED)
        self._rows = 0
        chosen: dict[str, str] = {}
        profiled = [
            (name, kind)
            for name, kind in ((f.name, kind_of(f.type)) for f in schema)
            if kind is not None and not _PANDAS_UNNAMED_INDEX.fullmatch(name)
        ]
        for name, kind in profiled:
            chosen.setdefault(str(name), kind)  # a repeated name: its first column
        names = list(chosen)[: self.max_columns]
        self._truncated = len(chosen) - len(names)
        numeric = sum(1 for n in names if chosen[n] == NUMERIC) or 1
        text = sum(1 for n in names if chosen[n] == CATEGORICAL) or 1
        sample = int(np.clip(_SAMPLE_BUDGET // numeric, _MIN_SAMPLE, SAMPLE_SIZE))
        tracked = int(np.clip(_TRACKED_BUDGET // text, _MIN_TRACKED, _TRACKED))
        self._columns = {
            n: _NumericColumn(sample) if chosen[n] == NUMERIC else _CategoricalColumn(tracked)
            for n in names
        }
        self._started = True

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        if not self._started:
            self.start(batch.schema)
        rows = batch.num_rows
        self._rows += rows
        if rows == 0:
            return
        keys: np.ndarray[Any, Any] | None = None
        # The first column of each name (a name may repeat, as in pandas).
        positions = {name: i for i, name in reversed(list(enumerate(batch.schema.names)))}
        for name, column in self._columns.items():
            position = positions.get(name)
            array = pa.nulls(rows) if position is None else batch.column(position)
            if isinstance(array, pa.ChunkedArray):
                array = array.combine_chunks()
            if isinstance(column, _NumericColumn):
                if keys is None:
                    keys = self._rng.random(rows)
                column.update(array, keys)
            else:
                column.update(array)

    def finish(self, rows: int | None = None) -> DatasetProfile:
        """The profile; ``rows``: the table's row count when its batches do not tell it (a
        table without columns)."""
        columns = {name: column.finish() for name, column in self._columns.items()}
        return DatasetProfile(self._rows if rows is None else rows, columns, self._truncated)


def profile_predictions(values: Any, *, categorical: bool | None = None) -> ColumnProfile:
    """The distribution of a model's predictions: class labels (``categorical`` True, or
    any values that are not numbers) as a categorical profile of the label as text, numbers
    as a numeric one. A 2-D answer (several outputs) is profiled by its first column."""
    array = _arrow(values)
    if categorical is None:
        categorical = kind_of(array.type) != NUMERIC
    profiler = ColumnProfiler(CATEGORICAL if categorical else NUMERIC)
    profiler.update(array)
    return profiler.finish()


def label_text(values: Any) -> pa.Array:
    """Values as the text a categorical profile counts: strings as they are, numbers and
    booleans as Arrow writes them (``1``, ``2.5``, ``true``), dates ``2024-01-31``, times
    and timestamps at full precision without trailing zeros; missing values stay null."""
    array = _arrow(values)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    arrow_type = array.type
    if pa.types.is_timestamp(arrow_type):
        # Canonical nanoseconds, so a CSV's timestamp[s] and pandas' [ns] agree.
        text = array.cast(pa.timestamp("ns", arrow_type.tz)).cast(pa.large_string())
        text = pc.replace_substring_regex(text, r"(\.\d*?)0+(Z?)$", r"\1\2")
        return pc.replace_substring_regex(text, r"\.(Z?)$", r"\1")
    if pa.types.is_date(arrow_type):
        array = array.cast(pa.date32())
    if pa.types.is_null(arrow_type):
        return pa.nulls(len(array), pa.large_string())
    return array.cast(pa.large_string())


def _arrow(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, np.ndarray) and values.ndim == 2:
        values = values[:, 0]
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        # Mixed Python objects (labels of several types): profiled as their text.
        return pa.array([None if v is None else str(v) for v in np.asarray(values, dtype=object)])


def _floats(array: Any) -> np.ndarray[Any, Any]:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if array.type != pa.float64():
        array = pc.cast(array, pa.float64(), safe=False)
    return arrays.to_numpy(array, nulls_as_nan=True)


def _rounded(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``values`` to ``_DIGITS`` significant digits (monotonic: order is kept). A few hundred
    numbers per column, so formatting each is cheap and exact to the digit."""
    return np.array([float(f"{v:.{_DIGITS}g}") for v in np.asarray(values, dtype=np.float64)])


def _finite(value: float) -> float | None:
    return float(_rounded(np.array([value]))[0]) if math.isfinite(value) else None

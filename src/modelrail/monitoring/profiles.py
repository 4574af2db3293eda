"""Reference profiles: what a version's data and predictions looked like, in a few kilobytes.

A ``DatasetProfile`` summarises a table per column (``"modelrail.profile.v1"``); a
``ReferenceProfile`` is what a model version keeps from registration
(``"modelrail.reference.v1"``): its run's train and test profiles and the distribution of
its predictions on the test data. Monitors compare live data with them.

Numeric columns (int, float, bool) keep count, missing, mean, std, min, max, the 0th..100th
percentiles and ``edges``: the decile edges with duplicates dropped (first the minimum, last
the maximum), with ``proportions``, each bin's share of the values; bins are
``[e0, e1), ..., [e(k-1), e(k)]``, the last one closed. When a tenth or more of the values
are the maximum, the maximum is repeated as the last edge, so it has a bin of its own,
``[max, max]``: a flag's edges are ``[0, 1, 1]`` (bins: zeros, ones), a constant column's
``[v, v]``. ``bin_counts`` / ``bin_proportions`` (or ``numpy.histogram``) put other values into
the same bins (values outside go to the first or last bin), so a monitor compares like
with like. Other columns
(text, categories, dates as text) keep the shares of their 50 most frequent values among
non-missing ones, and ``other`` for the rest (and for values longer than 200 characters,
which are text rather than categories). ``count`` is the number of non-missing values,
``missing`` of missing ones (null, NaN, and for numbers also infinities). Numbers are kept
to six significant digits.

This module is the format (reading and writing the documents); ``monitoring.profiling``
computes profiles.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelrail.errors import MonitoringDataError

__all__ = [
    "BATCH_FORMAT",
    "CATEGORICAL",
    "FORMAT",
    "NUMERIC",
    "REFERENCE_FORMAT",
    "BatchProfile",
    "ColumnProfile",
    "DatasetProfile",
    "ReferenceProfile",
    "bin_counts",
    "bin_proportions",
]

FORMAT = "modelrail.profile.v1"
REFERENCE_FORMAT = "modelrail.reference.v1"
BATCH_FORMAT = "modelrail.batch-profile.v1"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
QUANTILES = 101


@dataclass(frozen=True)
class ColumnProfile:
    """One column (or a model's predictions), summarised. Numeric fields are None / empty
    for a categorical column and for a numeric one without values, and vice versa."""

    kind: str  # NUMERIC | CATEGORICAL
    count: int
    missing: int
    mean: float | None = None
    std: float | None = None  # sample standard deviation (ddof=1; 0.0 for one value)
    min: float | None = None
    max: float | None = None
    quantiles: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()
    proportions: tuple[float, ...] = ()
    frequencies: Mapping[str, float] = field(default_factory=dict)  # most frequent first
    other: float = 0.0

    @property
    def rows(self) -> int:
        return self.count + self.missing

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    def summary(self, top: int = 2) -> str:
        """A few words for a table cell: ``mean 31.2`` or ``basic 54% pro 46%``."""
        if self.count == 0:
            return "no values"
        if self.kind == NUMERIC:
            return f"mean {_short(self.mean)}"
        shares = [f"{value} {share:.0%}" for value, share in list(self.frequencies.items())[:top]]
        more = len(self.frequencies) > top or self.other > 0
        return " ".join(shares) + (" ..." if more else "")

    def describe(self, top: int = 5) -> str:
        """A line for a page: ``mean 31.2, median 30, 5-95% 18 to 60`` or the ``top`` most
        frequent values with their shares (and what the others add up to)."""
        if self.count == 0:
            return "no values"
        if self.kind == NUMERIC:
            q = self.quantiles
            spread = f", 5-95% {_short(q[5])} to {_short(q[95])}" if len(q) == QUANTILES else ""
            median = f", median {_short(q[50])}" if len(q) == QUANTILES else ""
            return f"mean {_short(self.mean)}{median}{spread}"
        shares = [f"{value} {share:.0%}" for value, share in list(self.frequencies.items())[:top]]
        rest = self.other + sum(list(self.frequencies.values())[top:])
        return ", ".join(shares) + (f", others {rest:.0%}" if rest > 0 else "")

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"kind": self.kind, "count": self.count}
        document["missing"] = self.missing
        if self.kind == NUMERIC:
            document.update(mean=self.mean, std=self.std, min=self.min, max=self.max)
            document["quantiles"] = list(self.quantiles)
            document["edges"] = list(self.edges)
            document["proportions"] = list(self.proportions)
        else:
            document["frequencies"] = dict(self.frequencies)
            document["other"] = self.other
        return document

    @classmethod
    def from_json(cls, document: object, where: str = "column") -> ColumnProfile:
        """A column profile from its JSON object; ``MonitoringDataError`` naming ``where``
        and the field for anything malformed."""
        body = _object(document, where)
        kind = body.get("kind")
        if kind not in (NUMERIC, CATEGORICAL):
            raise _bad(where, "kind", f"must be {NUMERIC!r} or {CATEGORICAL!r}, not {kind!r}")
        count = _count(body, "count", where)
        missing = _count(body, "missing", where)
        if kind == CATEGORICAL:
            frequencies = body.get("frequencies", {})
            if not isinstance(frequencies, dict) or not all(
                isinstance(v, str) and _is_share(s) for v, s in frequencies.items()
            ):
                raise _bad(where, "frequencies", "must map values to shares between 0 and 1")
            other = body.get("other", 0.0)
            if not _is_share(other):
                raise _bad(where, "other", f"must be a share between 0 and 1, not {other!r}")
            return cls(kind, count, missing, frequencies=dict(frequencies), other=float(other))
        quantiles = _numbers(body, "quantiles", where)
        edges = _numbers(body, "edges", where)
        proportions = _numbers(body, "proportions", where)
        if count and len(quantiles) != QUANTILES:
            raise _bad(where, "quantiles", f"must hold {QUANTILES} values, not {len(quantiles)}")
        if any(b < a for a, b in itertools.pairwise(quantiles)):
            raise _bad(where, "quantiles", "must not decrease")
        if any(b < a for a, b in itertools.pairwise(edges)):
            raise _bad(where, "edges", "must not decrease")
        if count and (len(edges) < 2 or len(proportions) != len(edges) - 1):
            raise _bad(where, "proportions", "must hold one share per bin between the edges")
        return cls(
            kind,
            count,
            missing,
            mean=_number(body, "mean", where),
            std=_number(body, "std", where),
            min=_number(body, "min", where),
            max=_number(body, "max", where),
            quantiles=quantiles,
            edges=edges,
            proportions=proportions,
        )


@dataclass(frozen=True)
class DatasetProfile:
    """A table, summarised per column. Columns that could not be summarised (lists,
    structs, binary) are left out; ``truncated`` counts columns left out because the table
    had more than the profile keeps (the first ones are kept)."""

    rows: int
    columns: Mapping[str, ColumnProfile]
    truncated: int = 0

    def to_json(self) -> dict[str, Any]:
        columns = {name: column.to_json() for name, column in self.columns.items()}
        document = {"format": FORMAT, "rows": self.rows, "columns": columns}
        return {**document, "truncated": self.truncated}

    @classmethod
    def from_json(cls, document: object, where: str = "profile") -> DatasetProfile:
        body = _object(document, where)
        if body.get("format") != FORMAT:
            raise _bad(where, "format", f"must be {FORMAT!r}, not {body.get('format')!r}")
        columns = body.get("columns")
        if not isinstance(columns, dict):
            raise _bad(where, "columns", "must be an object of column profiles")
        parsed = {
            str(name): ColumnProfile.from_json(column, f"{where} column {name!r}")
            for name, column in columns.items()
        }
        truncated = _count(body, "truncated", where) if "truncated" in body else 0
        return cls(_count(body, "rows", where), parsed, truncated)

    def to_text(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_text(cls, text: str | bytes, where: str = "profile") -> DatasetProfile:
        return cls.from_json(_parse(text, where), where)


@dataclass(frozen=True)
class ReferenceProfile:
    """What a model version keeps from registration to be monitored against. Any part may
    be None (no such data logged, or it could not be computed: ``notes`` says why)."""

    train: DatasetProfile | None
    test: DatasetProfile | None
    prediction: ColumnProfile | None
    train_label: str | None = None  # e.g. "train 1.2": the dataset's role and version label
    test_label: str | None = None
    prediction_data: str | None = None  # the role of the data predicted: test, validation, train
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REFERENCE_FORMAT,
            "train": None if self.train is None else self.train.to_json(),
            "test": None if self.test is None else self.test.to_json(),
            "prediction": None if self.prediction is None else self.prediction.to_json(),
            "train_label": self.train_label,
            "test_label": self.test_label,
            "prediction_data": self.prediction_data,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, document: object, where: str = "reference profile") -> ReferenceProfile:
        body = _object(document, where)
        if body.get("format") != REFERENCE_FORMAT:
            found = body.get("format")
            raise _bad(where, "format", f"must be {REFERENCE_FORMAT!r}, not {found!r}")
        parts: dict[str, Any] = {}
        for role in ("train", "test"):
            value = body.get(role)
            parts[role] = (
                None if value is None else DatasetProfile.from_json(value, f"{where} {role}")
            )
        prediction = body.get("prediction")
        if prediction is not None:
            prediction = ColumnProfile.from_json(prediction, f"{where} prediction")
        texts = {k: body.get(k) for k in ("train_label", "test_label", "prediction_data")}
        for name, value in texts.items():
            if value is not None and not isinstance(value, str):
                raise _bad(where, name, f"must be text, not {value!r}")
        notes = body.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise _bad(where, "notes", "must be a list of texts")
        return cls(parts["train"], parts["test"], prediction, notes=tuple(notes), **texts)

    def to_text(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_text(cls, text: str | bytes, where: str = "reference profile") -> ReferenceProfile:
        return cls.from_json(_parse(text, where), where)


@dataclass(frozen=True)
class BatchProfile:
    """What a batch run scored: its input (the model's input columns) and the distribution
    of its predictions. A resumed run profiles the rows it scored after resuming, from
    ``first_row`` on."""

    input: DatasetProfile | None
    prediction: ColumnProfile | None
    first_row: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BATCH_FORMAT,
            "input": None if self.input is None else self.input.to_json(),
            "prediction": None if self.prediction is None else self.prediction.to_json(),
            "first_row": self.first_row,
        }

    @classmethod
    def from_json(cls, document: object, where: str = "batch profile") -> BatchProfile:
        body = _object(document, where)
        if body.get("format") != BATCH_FORMAT:
            found = body.get("format")
            raise _bad(where, "format", f"must be {BATCH_FORMAT!r}, not {found!r}")
        given, prediction = body.get("input"), body.get("prediction")
        return cls(
            None if given is None else DatasetProfile.from_json(given, f"{where} input"),
            None
            if prediction is None
            else ColumnProfile.from_json(prediction, f"{where} prediction"),
            _count(body, "first_row", where),
        )

    def to_text(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_text(cls, text: str | bytes, where: str = "batch profile") -> BatchProfile:
        return cls.from_json(_parse(text, where), where)


def bin_counts(values: Any, edges: Sequence[float]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """How many of the finite ``values`` fall in each bin between ``edges`` (as a profile's
    ``edges``: bins ``[e0, e1), ..., [e(k-1), e(k)]``); values below the first edge count in
    the first bin, above the last in the last."""
    bins = len(edges) - 1
    if bins < 1:
        return np.zeros(0, dtype=np.int64)
    numbers = np.asarray(values, dtype=np.float64).ravel()
    numbers = numbers[np.isfinite(numbers)]
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    return np.bincount(np.searchsorted(inner, numbers, side="right"), minlength=bins)


def bin_proportions(values: Any, edges: Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each bin's share of the finite ``values`` (see ``bin_counts``); zeros if there are none."""
    counts = bin_counts(values, edges)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _parse(text: str | bytes, where: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MonitoringDataError(f"{where} is not JSON: {exc}") from exc


def _object(document: object, where: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise MonitoringDataError(f"{where}: expected a JSON object, got {type(document).__name__}")
    return document


def _bad(where: str, name: str, problem: str) -> MonitoringDataError:
    return MonitoringDataError(f"{where}: field {name!r} {problem}")


def _count(body: Mapping[str, Any], name: str, where: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(where, name, f"must be a whole number >= 0, not {value!r}")
    return value


def _is_finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _is_share(value: object) -> bool:
    return _is_finite(value) and 0.0 <= float(value) <= 1.0  # type: ignore[arg-type]


def _number(body: Mapping[str, Any], name: str, where: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_finite(value):
        raise _bad(where, name, f"must be a finite number, not {value!r}")
    return float(value)


def _numbers(body: Mapping[str, Any], name: str, where: str) -> tuple[float, ...]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(_is_finite(v) for v in value):
        raise _bad(where, name, "must be a list of finite numbers")
    return tuple(float(v) for v in value)

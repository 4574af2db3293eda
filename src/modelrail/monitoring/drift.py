"""Drift of logged values against a reference profile: PSI, Kolmogorov-Smirnov, Jensen-Shannon.

The population stability index compares shares of the reference profile's own bins:
a numeric column's decile bins (values outside go to the first or last bin), a categorical
column's kept values plus "other" (values beyond them, or never seen in training); both
plus a bin for missing values, so a column that starts arriving empty drifts too. Shares
are floored at ``EPSILON`` so an empty bin counts as rare, not impossible:
``PSI = sum((current - reference) * ln(current / reference))``.

Numeric columns also get the Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``) of the
logged values against the reference's 101 percentiles, with its asymptotic p-value for the
two samples' sizes (``scipy.stats.kstwobign``); categorical ones the Jensen-Shannon
distance (base 2, 0 to 1; ``scipy.spatial.distance.jensenshannon``) between the shares.
The status comes from PSI and the environment's ``drift_watch`` / ``drift_alert``.

Everything is vectorised: Arrow's value counts for text, numpy for numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, kstwobign

from modelrail.monitoring.profiles import CATEGORICAL, NUMERIC, ColumnProfile, bin_counts
from modelrail.monitoring.profiling import label_text
from modelrail.monitoring.report import ALERT, NO_DATA, NO_REFERENCE, OK, WATCH, FeatureDrift

EPSILON = 1e-4
# Beyond this many values the KS test runs on an evenly spaced subsample of the sorted
# values: its statistic moves by less than 1/this, and its p-value is ~0 for any real shift.
KS_SAMPLE = 200_000

Floats = np.ndarray[Any, np.dtype[np.float64]]


def population_stability_index(reference: Any, current: Any, *, epsilon: float = EPSILON) -> float:
    """PSI between two vectors of shares over the same bins (each summing to 1)."""
    expected = np.maximum(np.asarray(reference, dtype=np.float64), epsilon)
    actual = np.maximum(np.asarray(current, dtype=np.float64), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def drift_status(psi: float | None, watch: float, alert: float) -> tuple[str, str | None]:
    """The status PSI ``psi`` earns and the bound it reached (e.g. ``">= 0.2"``)."""
    if psi is None:
        return NO_DATA, None
    if psi >= alert:
        return ALERT, f">= {alert:g}"
    if psi >= watch:
        return WATCH, f">= {watch:g}"
    return OK, None


def feature_drift(
    name: str,
    profile: ColumnProfile | None,
    values: pa.Array | pa.ChunkedArray,
    *,
    watch: float,
    alert: float,
) -> FeatureDrift:
    """Logged ``values`` of column ``name`` against its reference ``profile`` (None: the
    reference does not know the column, or there is no reference)."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    rows = len(array)
    if profile is None:
        kind = NUMERIC if _is_numeric(array.type) else CATEGORICAL
        numbers = as_numbers(array) if kind == NUMERIC else None
        missing = _missing_numbers(numbers) if numbers is not None else array.null_count
        current = _numeric_summary(numbers) if numbers is not None else f"{rows:,} values"
        return FeatureDrift(
            name, kind, "-", current, rows, missing / rows if rows else 0.0,
            None, None, None, None, NO_REFERENCE,
        )  # fmt: skip
    if profile.kind == NUMERIC:
        return _numeric(name, profile, as_numbers(array), watch, alert)
    return _categorical(name, profile, label_text(array), watch, alert)


def _numeric(
    name: str, profile: ColumnProfile, numbers: Floats, watch: float, alert: float
) -> FeatureDrift:
    rows = len(numbers)
    finite = numbers[np.isfinite(numbers)]
    missing = rows - len(finite)
    reference = profile.summary()
    if rows == 0:
        return FeatureDrift(
            name, NUMERIC, reference, "no values", 0, 0.0, None, "ks", None, None, NO_DATA
        )
    ref_shares = _with_missing(np.asarray(profile.proportions), profile.count, profile.missing)
    counts = bin_counts(finite, profile.edges) if profile.count else np.zeros(0)
    cur_shares = np.append(counts, missing) / rows
    psi = population_stability_index(ref_shares, cur_shares)
    statistic, p_value = (None, None)
    if len(finite) and profile.count and len(profile.quantiles) > 1:
        statistic, p_value = ks_against_quantiles(finite, profile.quantiles, profile.count)
    status, threshold = drift_status(psi, watch, alert)
    return FeatureDrift(
        name,
        NUMERIC,
        reference,
        _numeric_summary(numbers),
        rows,
        missing / rows,
        psi,
        "ks",
        statistic,
        p_value,
        status,
        threshold,
    )


def _categorical(
    name: str, profile: ColumnProfile, text: pa.Array, watch: float, alert: float
) -> FeatureDrift:
    rows = len(text)
    reference = profile.summary()
    if rows == 0:
        return FeatureDrift(
            name, CATEGORICAL, reference, "no values", 0, 0.0, None, "js", None, None, NO_DATA
        )
    known = list(profile.frequencies)
    counts = category_counts(text, known)
    missing = text.null_count
    cur_shares = np.append(counts, missing) / rows
    kept = np.array([profile.frequencies[v] for v in known] + [profile.other], dtype=np.float64)
    ref_shares = _with_missing(kept, profile.count, profile.missing)
    psi = population_stability_index(ref_shares, cur_shares)
    distance = float(jensenshannon(ref_shares, cur_shares, base=2))
    status, threshold = drift_status(psi, watch, alert)
    present = rows - missing
    shown = known[:2]
    current = " ".join(
        f"{value} {count / present if present else 0.0:.0%}"
        for value, count in zip(shown, counts, strict=False)
    )
    if len(known) > 2 or profile.other > 0 or counts[-1] > 0:
        current += " ..."
    return FeatureDrift(
        name,
        CATEGORICAL,
        reference,
        current if present else "no values",
        rows,
        missing / rows,
        psi,
        "js",
        None if np.isnan(distance) else distance,
        None,
        status,
        threshold,
    )


def category_counts(text: pa.Array, known: list[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """How many of the non-missing ``text`` values are each of ``known``, then how many are
    none of them (the last entry: "other")."""
    present = len(text) - text.null_count
    if present == 0:
        return np.zeros(len(known) + 1, dtype=np.int64)
    found = pc.value_counts(pc.drop_null(text) if text.null_count else text)
    values = found.field("values").cast(pa.large_string())
    counts = found.field("counts").to_numpy().astype(np.int64)
    positions = pc.index_in(values, value_set=pa.array(known, pa.large_string())).to_numpy(
        zero_copy_only=False
    )
    result = np.zeros(len(known) + 1, dtype=np.int64)
    matched = ~np.isnan(positions.astype(np.float64))
    np.add.at(result, positions[matched].astype(np.int64), counts[matched])
    result[-1] = counts[~matched].sum()
    return result


def ks_against_quantiles(
    values: Floats, quantiles: Any, reference_count: int
) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic of finite ``values`` against the distribution whose
    0th..100th percentiles are ``quantiles`` (``scipy.stats.ks_2samp`` against those points,
    which keeps the jumps of a discrete column where a continuous distribution function would
    not), and its asymptotic p-value for ``len(values)`` against ``reference_count`` rows."""
    sample = values
    if len(sample) > KS_SAMPLE:
        sample = np.sort(values)[np.linspace(0, len(values) - 1, KS_SAMPLE).astype(np.int64)]
    points = np.asarray(quantiles, dtype=np.float64)
    statistic = float(ks_2samp(sample, points).statistic)
    n, m = len(values), max(reference_count, len(points))
    p_value = float(kstwobign.sf(statistic * math.sqrt(n * m / (n + m))))
    return statistic, p_value


def _with_missing(kept: Floats, count: int, missing: int) -> Floats:
    """Shares among non-missing values, and the missing share, as shares of all rows."""
    rows = count + missing
    if rows == 0:
        return np.append(np.zeros_like(kept), 0.0)
    return np.append(kept * (count / rows), missing / rows)


def _is_numeric(arrow_type: pa.DataType) -> bool:
    types = pa.types
    return bool(types.is_integer(arrow_type) or types.is_floating(arrow_type))


def as_numbers(array: pa.Array) -> Floats:
    """Numbers as float64, missing as NaN; text that is not a number counts as missing."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_null(array.type):
        return np.full(len(array), np.nan)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        trimmed = pc.utf8_trim_whitespace(array)
        number = pc.match_substring_regex(
            trimmed, r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^(?i:[-+]?(nan|inf|infinity))$"
        )
        array = pc.if_else(number, trimmed, pa.scalar(None, trimmed.type))
    floats = pc.cast(array, pa.float64(), safe=False)
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)


def _missing_numbers(numbers: Floats) -> int:
    return int(len(numbers) - np.isfinite(numbers).sum())


def _numeric_summary(numbers: Floats) -> str:
    finite = numbers[np.isfinite(numbers)]
    return f"mean {float(finite.mean()):.3g}" if len(finite) else "no values"

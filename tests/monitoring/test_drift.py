"""Drift statistics against a reference profile: PSI by hand on small cases, KS and JS as
scipy computes them, and the status each earns."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, kstwobign

from modelrail.monitoring.drift import (
    EPSILON,
    feature_drift,
    population_stability_index,
)
from modelrail.monitoring.profiles import ColumnProfile
from modelrail.monitoring.profiling import ColumnProfiler


def _profile(values: object, kind: str) -> ColumnProfile:
    profiler = ColumnProfiler(kind)
    profiler.update(values)
    return profiler.finish()


def test_psi_is_the_sum_of_share_differences_times_their_log_ratio() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5), by hand: 0.17329 + 0.10137
    assert population_stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    assert population_stability_index([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_an_empty_bin_counts_as_rare_not_impossible() -> None:
    # The reference's empty bin is floored at EPSILON: 0.5 ln(2) + (0.5 - 1e-4) ln(0.5 / 1e-4)
    expected = 0.5 * math.log(2) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert population_stability_index([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected)
    assert math.isfinite(population_stability_index([0.0, 1.0], [1.0, 0.0]))


def test_numeric_drift_uses_the_profile_bins_and_scipy_ks() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0.0, 1.0, 10_000)
    profile = _profile(reference, "numeric")
    same = feature_drift("x", profile, pa.array(rng.normal(0.0, 1.0, 5_000)), watch=0.1, alert=0.2)
    assert same.status == "ok" and same.psi is not None and same.psi < 0.02
    shifted_values = rng.normal(1.0, 1.0, 5_000)
    shifted = feature_drift("x", profile, pa.array(shifted_values), watch=0.1, alert=0.2)
    assert (shifted.status, shifted.threshold, shifted.statistic) == ("alert", ">= 0.2", "ks")
    # The bins are the profile's deciles: ten shares of about 10% each, outside ones widened.
    shares = np.histogram(shifted_values, bins=[-np.inf, *profile.edges[1:-1], np.inf])[0] / 5_000
    expected_psi = population_stability_index([*profile.proportions, 0.0], [*shares, 0.0])
    assert shifted.psi == pytest.approx(expected_psi)
    # KS against the percentiles' distribution function agrees with the two-sample test
    # against the reference data itself.
    assert shifted.statistic_value == pytest.approx(
        ks_2samp(shifted_values, reference).statistic, abs=0.02
    )
    assert shifted.p_value is not None and shifted.p_value < 1e-6
    assert (shifted.reference, shifted.current) == (
        f"mean {profile.mean:.3g}",
        f"mean {shifted_values.mean():.3g}",
    )


def test_ks_of_a_discrete_column_keeps_its_jumps() -> None:
    # 60% zeros, 40% ones in training; only zeros now. The distribution functions differ by
    # 1 - (the share of the 101 percentiles at 0), about 0.4, not by the 0.6 a continuous
    # distribution function through the percentiles would give.
    profile = _profile(np.array([0.0] * 600 + [1.0] * 400), "numeric")
    at_zero = sum(1 for q in profile.quantiles if q == 0.0)
    assert 59 <= at_zero <= 61
    drift = feature_drift("flag", profile, pa.array(np.zeros(100)), watch=0.1, alert=0.2)
    assert drift.statistic_value == pytest.approx(1 - at_zero / 101)
    expected = ks_2samp(np.zeros(100), np.array(profile.quantiles)).statistic
    assert drift.statistic_value == pytest.approx(expected)
    # The p-value counts the reference's 1,000 rows, not its 101 percentiles.
    scaled = (1 - at_zero / 101) * math.sqrt(100 * 1000 / 1100)
    assert drift.p_value == pytest.approx(kstwobign.sf(scaled))


def test_a_column_arriving_empty_drifts_through_its_missing_share() -> None:
    profile = _profile(np.random.default_rng(1).normal(0, 1, 1000), "numeric")
    half_missing = pa.array([0.1, None] * 500, pa.float64())
    drift = feature_drift("x", profile, half_missing, watch=0.1, alert=0.2)
    assert drift.missing_rate == 0.5
    assert drift.status == "alert"


def test_categorical_drift_counts_other_and_missing_and_matches_scipy_js() -> None:
    reference = ["basic"] * 60 + ["pro"] * 30 + [None] * 10
    profile = _profile(pa.array(reference, pa.string()), "categorical")
    # A value never seen in training ("gold") falls in "other".
    now = ["basic"] * 30 + ["pro"] * 30 + ["gold"] * 20 + [None] * 20
    drift = feature_drift("plan", profile, pa.array(now, pa.string()), watch=0.1, alert=0.2)
    # Bins: basic, pro, other, missing.
    expected_reference = [0.6, 0.3, 0.0, 0.1]
    expected_now = [0.3, 0.3, 0.2, 0.2]
    assert drift.psi == pytest.approx(population_stability_index(expected_reference, expected_now))
    assert drift.statistic == "js"
    assert drift.statistic_value == pytest.approx(
        jensenshannon(expected_reference, expected_now, base=2)
    )
    assert (drift.status, drift.missing_rate, drift.rows) == ("alert", 0.2, 100)
    assert drift.reference == "basic 67% pro 33%"  # shares among values that are present
    assert drift.current == "basic 38% pro 38% ..."
    same = feature_drift("plan", profile, pa.array(reference, pa.string()), watch=0.1, alert=0.2)
    assert same.status == "ok" and same.psi == pytest.approx(0.0, abs=1e-9)


def test_numbers_of_a_categorical_column_compare_as_the_profile_wrote_them() -> None:
    profile = _profile(pa.array(["1", "2", "2"]), "categorical")
    drift = feature_drift("code", profile, pa.array([1.0, 2.0, 2.0]), watch=0.1, alert=0.2)
    assert drift.psi == pytest.approx(0.0, abs=1e-9)


def test_a_watch_between_the_thresholds_and_no_data_without_rows() -> None:
    profile = _profile(pa.array(["a"] * 50 + ["b"] * 50), "categorical")
    watch = feature_drift("c", profile, pa.array(["a"] * 66 + ["b"] * 34), watch=0.1, alert=0.2)
    assert watch.psi is not None and 0.1 <= watch.psi < 0.2
    assert (watch.status, watch.threshold) == ("watch", ">= 0.1")
    empty = feature_drift("c", profile, pa.array([], pa.string()), watch=0.1, alert=0.2)
    assert (empty.status, empty.psi, empty.rows) == ("no data", None, 0)


def test_a_column_the_reference_does_not_know_has_no_reference() -> None:
    drift = feature_drift("new", None, pa.array([1.0, None, 3.0]), watch=0.1, alert=0.2)
    assert (drift.status, drift.psi, drift.kind) == ("no reference", None, "numeric")
    assert drift.missing_rate == pytest.approx(1 / 3)

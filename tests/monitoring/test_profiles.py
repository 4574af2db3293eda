"""Profiles of tables and predictions: what each kind of column keeps, that a file gives the
same profile as the frame it was written from, that the batch size changes nothing, that a
profile stays small, and that a damaged document is refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelrail.errors import MonitoringDataError
from modelrail.monitoring.dataset_profiles import fingerprint_and_profile
from modelrail.monitoring.profiles import (
    BatchProfile,
    ColumnProfile,
    DatasetProfile,
    ReferenceProfile,
    bin_counts,
    bin_proportions,
)
from modelrail.monitoring.profiling import (
    MAX_COLUMNS,
    SAMPLE_SIZE,
    ProfileBuilder,
    label_text,
    profile_predictions,
)
from modelrail.tracking.datasets import fingerprint_dataset


def _mixed(rows: int, seed: int = 3) -> pd.DataFrame:
    """Every kind of column a user logs, with missing values of each kind."""
    rng = np.random.default_rng(seed)
    plans = np.array(["basic", "pro", "team"])[rng.integers(0, 3, rows)].astype(object)
    plans[::10] = None
    nullable = pd.array(rng.integers(18, 90, rows), dtype="Int64")
    nullable[::7] = pd.NA
    spend = rng.normal(50.0, 12.0, rows)
    spend[::5] = np.nan
    return pd.DataFrame(
        {
            "age": nullable,
            "spend": spend,
            "plan": plans,
            "tier": pd.Categorical(rng.choice(["gold", "silver"], rows)),
            "active": rng.random(rows) < 0.3,
            "joined": pd.to_datetime("2024-01-01 09:30")
            + pd.to_timedelta(rng.integers(0, 4, rows), "D"),
        }
    )


def _profile(data: Any) -> DatasetProfile:
    profiled = fingerprint_and_profile(data)
    assert profiled.profile is not None, profiled.problem
    return profiled.profile


def test_numeric_columns_keep_counts_moments_percentiles_and_decile_bins() -> None:
    frame = _mixed(2_000)
    profile = _profile(frame)
    assert profile.rows == 2_000 and profile.truncated == 0
    assert list(profile.columns) == ["age", "spend", "plan", "tier", "active", "joined"]

    age = profile.columns["age"]  # pandas' nullable Int64, pd.NA as missing
    present = frame["age"].dropna().astype(float)
    assert (age.kind, age.count, age.missing) == ("numeric", len(present), 2_000 - len(present))
    assert age.mean == pytest.approx(present.mean(), rel=1e-5)
    assert age.std == pytest.approx(present.std(), rel=1e-5)
    assert (age.min, age.max) == (present.min(), present.max())
    assert len(age.quantiles) == 101 and age.quantiles[0] == age.min
    assert age.quantiles[50] == np.quantile(present, 0.5, method="inverted_cdf")
    assert age.edges[0] == age.min and age.edges[-1] == age.max
    assert list(age.edges) == sorted(set(age.edges))
    assert len(age.proportions) == len(age.edges) - 1
    assert age.proportions == pytest.approx(bin_proportions(present, age.edges), abs=1e-6)
    assert sum(age.proportions) == pytest.approx(1.0, abs=1e-5)

    spend = profile.columns["spend"]  # float NaN counts as missing
    assert (spend.count, spend.missing) == (1_600, 400)

    active = profile.columns["active"]  # a flag is a number: its bins are its two values
    assert (active.kind, active.edges) == ("numeric", (0.0, 1.0, 1.0))
    share = frame["active"].mean()
    assert active.proportions == pytest.approx((1 - share, share), abs=1e-6)
    assert bin_counts([0, 1, 1, 1], active.edges).tolist() == [1, 3]


def test_text_categories_and_dates_keep_the_shares_of_their_values() -> None:
    frame = _mixed(2_000)
    profile = _profile(frame)
    plan = profile.columns["plan"]
    assert (plan.kind, plan.count, plan.missing) == ("categorical", 1_800, 200)
    shares = frame["plan"].value_counts(normalize=True)
    assert plan.frequencies == pytest.approx(shares.to_dict(), abs=1e-6)
    assert list(plan.frequencies) == list(shares.index)  # most frequent first
    assert plan.other == 0.0 and plan.mean is None and plan.quantiles == ()

    tier = profile.columns["tier"]  # a pandas Categorical
    assert tier.kind == "categorical" and set(tier.frequencies) == {"gold", "silver"}
    joined = profile.columns["joined"]  # dates as text
    assert set(joined.frequencies) == {f"2024-01-0{d} 09:30:00" for d in range(1, 5)}


def test_only_the_fifty_most_frequent_values_are_kept_and_the_rest_is_other() -> None:
    values = [f"v{i:03d}" for i in range(120) for _ in range(120 - i)]  # v000 is the most frequent
    long_text = "x" * 300
    frame = pd.DataFrame({"code": [*values, long_text, long_text]})
    column = _profile(frame).columns["code"]
    assert list(column.frequencies) == [f"v{i:03d}" for i in range(50)]
    total = len(values) + 2
    assert column.frequencies["v000"] == pytest.approx(120 / total, abs=1e-6)
    kept = sum(120 - i for i in range(50))
    assert column.other == pytest.approx(1 - kept / total, abs=1e-5)
    assert long_text not in column.frequencies  # free text is no category: counted in other


def test_a_column_of_many_distinct_values_keeps_its_frequent_ones_in_bounded_memory() -> None:
    """Past 10,000 distinct values the rarest are folded into "other" as batches come: values
    that recur throughout keep their exact counts; a profile keeps 50 values whatever."""
    rng = np.random.default_rng(8)
    values = np.array([f"hot{i % 5}" for i in range(10_000)] + [f"id{i}" for i in range(20_000)])
    frame = pd.DataFrame({"who": rng.permutation(values)})
    profiled = fingerprint_and_profile(frame, batch_rows=1_000)
    assert profiled.profile is not None
    column = profiled.profile.columns["who"]
    assert column.count == 30_000 and len(column.frequencies) == 50
    assert list(column.frequencies)[:5] == [f"hot{i}" for i in range(5)]
    for i in range(5):
        assert column.frequencies[f"hot{i}"] == pytest.approx(2_000 / 30_000, abs=1e-6)
    singles = sum(list(column.frequencies.values())[5:])
    assert singles == pytest.approx(45 / 30_000, abs=1e-5)
    assert column.other == pytest.approx(1 - 10_045 / 30_000, abs=1e-5)


def test_edge_cases_all_missing_empty_one_row_and_no_columns() -> None:
    missing = _profile(pd.DataFrame({"x": [np.nan] * 4, "s": [None] * 4}))
    assert missing.columns["x"] == ColumnProfile("numeric", 0, 4)
    assert missing.columns["s"] == ColumnProfile("categorical", 0, 4)
    assert missing.columns["x"].describe() == "no values"

    empty = _profile(pd.DataFrame({"x": pd.Series([], dtype=float), "s": pd.Series([], dtype=str)}))
    assert empty.rows == 0 and set(empty.columns) == {"x", "s"}
    assert empty.columns["x"].count == 0 and empty.columns["s"].count == 0

    one = _profile(pd.DataFrame({"x": [4.5], "s": ["a"]}))
    x = one.columns["x"]
    assert (x.count, x.mean, x.std, x.min, x.max) == (1, 4.5, 0.0, 4.5, 4.5)
    assert x.quantiles == (4.5,) * 101
    assert (x.edges, x.proportions) == ((4.5, 4.5), (1.0,))  # a constant: one closed bin
    assert one.columns["s"].frequencies == {"a": 1.0}

    no_columns = _profile(pd.DataFrame(index=range(5)))
    assert (no_columns.rows, dict(no_columns.columns)) == (5, {})


def test_nested_and_binary_columns_are_left_out() -> None:
    table = pa.table(
        {
            "x": [1.0, 2.0],
            "items": [[1, 2], [3]],
            "blob": [b"\x00\xff", b"\x01"],
            "pair": [{"a": 1}, {"a": 2}],
        }
    )
    assert list(_profile(table).columns) == ["x"]


def test_a_csv_file_and_a_parquet_folder_give_the_frames_profile(tmp_path: Path) -> None:
    frame = _mixed(3_000).drop(columns=["tier"])  # (a CSV keeps no Categorical dtype)
    expected = _profile(frame)
    frame.to_csv(tmp_path / "data.csv", index=False)
    folder = tmp_path / "parts"
    folder.mkdir()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.slice(0, 1_000), folder / "a.parquet", row_group_size=300)
    pq.write_table(table.slice(1_000), folder / "b.parquet", row_group_size=700)
    for path in (tmp_path / "data.csv", folder):
        got = _profile(path)
        assert got.rows == expected.rows and list(got.columns) == list(expected.columns)
        for name, column in expected.columns.items():
            _assert_same_column(got.columns[name], column)


def test_the_batch_size_does_not_change_the_profile() -> None:
    """The sample is drawn by keys per row, so percentiles, bins and shares are the same for
    any batch size; means and deviations are summed in another order, so equal to the sixth
    significant digit (the precision profiles keep)."""
    frame = _mixed(3 * SAMPLE_SIZE)  # more rows than the sample keeps
    whole = _profile(frame)
    for batch_rows in (997, 20_000, 1_000_000):
        profiled = fingerprint_and_profile(frame, batch_rows=batch_rows)
        assert profiled.profile is not None
        for name, column in whole.columns.items():
            _assert_same_column(profiled.profile.columns[name], column)


def test_sampled_percentiles_are_close_to_the_exact_ones() -> None:
    """Beyond 20,000 values percentiles come from a sample: each within 1.5 percentile ranks
    of the exact one (a sample of 20,000 is off by about 0.35 ranks, one standard error)."""
    values = np.random.default_rng(5).normal(size=200_000)
    column = _profile(pd.DataFrame({"x": values})).columns["x"]
    ordered = np.sort(values)
    for p in (1, 10, 25, 50, 75, 90, 99):
        rank = np.searchsorted(ordered, column.quantiles[p]) / len(values) * 100
        assert abs(rank - p) < 1.5, (p, rank)
    assert column.mean == pytest.approx(values.mean(), abs=1e-6)
    assert (column.min, column.max) == pytest.approx((values.min(), values.max()), rel=1e-5)


def test_profiling_leaves_the_fingerprint_as_it_was(tmp_path: Path) -> None:
    frame = _mixed(500)
    frame.drop(columns=["tier"]).to_csv(tmp_path / "data.csv", index=False)
    frame.to_parquet(tmp_path / "data.parquet")
    for data in (frame, tmp_path / "data.csv", tmp_path / "data.parquet"):
        assert fingerprint_and_profile(data).fingerprint == fingerprint_dataset(data)


def test_a_profile_stays_small_for_wide_and_long_tables() -> None:
    typical = _profile(_mixed(100_000))
    assert len(typical.to_text()) < 8_000  # six columns of 100,000 rows

    rng = np.random.default_rng(1)
    wide = pd.DataFrame(rng.normal(size=(300, 1_000)), columns=[f"c{i}" for i in range(1_000)])
    profile = _profile(wide)
    assert len(profile.columns) == MAX_COLUMNS and profile.truncated == 1_000 - MAX_COLUMNS
    assert list(profile.columns)[:2] == ["c0", "c1"]  # the first ones are kept
    assert len(profile.to_text()) < 1_300 * MAX_COLUMNS  # about a kilobyte per column
    assert DatasetProfile.from_text(profile.to_text()).truncated == 800


def test_profiles_survive_their_json() -> None:
    profile = _profile(_mixed(1_000))
    text = profile.to_text()
    assert json.loads(text)["format"] == "modelrail.profile.v1"
    assert DatasetProfile.from_text(text) == profile
    reference = ReferenceProfile(
        profile, None, profile_predictions(["yes", "no", "yes"]), "train 1.0", None, "train"
    )
    assert ReferenceProfile.from_text(reference.to_text()) == reference
    batch = BatchProfile(profile, profile_predictions(np.array([1.5, 2.5])), first_row=64)
    assert BatchProfile.from_text(batch.to_text()) == batch


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="modelrail.profile.v0"), "field 'format' must be"),
        (lambda d: d.update(rows=-1), "field 'rows' must be a whole number"),
        (lambda d: d.update(columns=[]), "field 'columns' must be an object"),
        (lambda d: d["columns"]["x"].update(kind="text"), "column 'x': field 'kind'"),
        (lambda d: d["columns"]["x"].update(quantiles=[1.0, 2.0]), "'quantiles' must hold 101"),
        (lambda d: d["columns"]["x"].update(edges=[2.0, 1.0]), "field 'edges' must not decrease"),
        (lambda d: d["columns"]["x"].update(mean="31"), "field 'mean' must be a finite number"),
        (lambda d: d["columns"]["s"].update(frequencies={"a": 3}), "field 'frequencies'"),
        (lambda d: d["columns"]["s"].update(other=None), "field 'other'"),
    ],
)
def test_a_damaged_profile_is_refused_naming_the_field(change: Any, message: str) -> None:
    document = _profile(pd.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "b", "a"]})).to_json()
    change(document)
    with pytest.raises(MonitoringDataError, match=message) as refused:
        DatasetProfile.from_json(document)
    assert refused.value.exit_code == 2 and refused.value.http_status == 422


def test_a_reference_that_is_not_json_or_not_a_reference_is_refused() -> None:
    with pytest.raises(MonitoringDataError, match="is not JSON"):
        ReferenceProfile.from_text("{not json")
    with pytest.raises(MonitoringDataError, match="expected a JSON object, got list"):
        ReferenceProfile.from_text("[]")
    with pytest.raises(MonitoringDataError, match=r"'modelrail\.reference\.v1'"):
        ReferenceProfile.from_text('{"format": "modelrail.profile.v1"}')
    bad_train = {"format": "modelrail.reference.v1", "train": {"format": "x"}}
    with pytest.raises(MonitoringDataError, match="reference profile train: field 'format'"):
        ReferenceProfile.from_json(bad_train)


def test_predictions_are_labels_as_text_or_numbers() -> None:
    labels = profile_predictions(np.array(["churn", "stay", "stay", None], dtype=object))
    assert (labels.kind, labels.count, labels.missing) == ("categorical", 3, 1)
    assert labels.frequencies == pytest.approx({"stay": 2 / 3, "churn": 1 / 3}, abs=1e-6)
    classes = profile_predictions(np.array([1, 0, 1, 1]), categorical=True)
    assert classes.frequencies == {"1": 0.75, "0": 0.25}
    assert profile_predictions(np.array([True, False]), categorical=True).frequencies == {
        "false": 0.5,
        "true": 0.5,
    }
    values = profile_predictions(np.array([[1.0, 9.0], [3.0, 9.0]]))  # first output of two
    assert (values.kind, values.mean, values.min, values.max) == ("numeric", 2.0, 1.0, 3.0)
    assert labels.summary() == "stay 67% churn 33%" and values.summary() == "mean 2"


def test_label_text_writes_values_as_profiles_count_them() -> None:
    stamps = pa.array([pd.Timestamp("2024-05-01 10:00:00.5"), None], pa.timestamp("s"))
    assert label_text(pa.array([1, None])).to_pylist() == ["1", None]
    assert label_text(pa.array([2.5, True], pa.float64())).to_pylist() == ["2.5", "1"]
    assert label_text(pa.array([pd.Timestamp("2024-05-01 10:00:00.5")])).to_pylist() == [
        "2024-05-01 10:00:00.5"
    ]
    assert label_text(stamps).to_pylist() == ["2024-05-01 10:00:00", None]


def test_bins_take_values_outside_the_edges_into_the_first_and_last_bin() -> None:
    edges = (0.0, 1.0, 2.0, 4.0)
    assert bin_counts([-5, 0, 0.5, 1, 3.9, 4, 100, np.nan], edges).tolist() == [3, 1, 3]
    assert bin_counts([7, 7, 8], (7.0, 7.0)).tolist() == [3]
    assert bin_proportions([], edges).tolist() == [0.0, 0.0, 0.0]


def test_a_builder_fed_batches_by_hand_matches_the_whole_table() -> None:
    table = pa.Table.from_pandas(_mixed(5_000), preserve_index=False)
    builder = ProfileBuilder(table.schema)
    for batch in table.to_batches(max_chunksize=333):
        builder.update(batch)
    by_hand = builder.finish()
    whole = _profile(table)
    for name, column in whole.columns.items():
        _assert_same_column(by_hand.columns[name], column)


def _assert_same_column(got: ColumnProfile, expected: ColumnProfile) -> None:
    """Equal, with means and deviations to the sixth significant digit."""
    assert (got.kind, got.count, got.missing) == (expected.kind, expected.count, expected.missing)
    assert (got.quantiles, got.edges, got.proportions) == (
        expected.quantiles,
        expected.edges,
        expected.proportions,
    )
    assert (got.min, got.max) == (expected.min, expected.max)
    assert got.frequencies == expected.frequencies and got.other == expected.other
    if expected.mean is not None:
        assert got.mean == pytest.approx(expected.mean, rel=2e-6)
        assert got.std == pytest.approx(expected.std, rel=2e-6)

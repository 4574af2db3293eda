from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import modelrail.tracking.datasets as datasets_module
from modelrail.errors import DatasetReadError, ModelrailError, UnsupportedDatasetError
from modelrail.tracking.datasets import DatasetFingerprint, fingerprint_dataset


def _frame(rows: int = 50) -> pd.DataFrame:
    """Mixed column types with missing values; every value survives a CSV round trip."""
    rng = np.random.default_rng(7)
    words = ["alpha", "b", "gamma delta", "naïve", "x,y", 'say "hi"']
    return pd.DataFrame(
        {
            "age": pd.array([int(v) if v % 7 else None for v in range(rows)], dtype="Int64"),
            "score": [float(v) if v % 5 else np.nan for v in rng.normal(size=rows)],
            "name": [words[i % len(words)] if i % 9 else None for i in range(rows)],
            "member": pd.array([bool(i % 2) if i % 11 else None for i in range(rows)], "boolean"),
            "seen": pd.to_datetime("2024-03-01 10:00:00") + pd.to_timedelta(range(rows), "min"),
        }
    )


def _rechunked(table: pa.Table, sizes: list[int]) -> pa.Table:
    """The same rows as ``table`` with chunk boundaries at the given sizes (cycled)."""
    batches, start, i = [], 0, 0
    while start < table.num_rows:
        size = sizes[i % len(sizes)]
        batches.extend(table.slice(start, size).to_batches())
        start, i = start + size, i + 1
    return pa.Table.from_batches(batches, schema=table.schema)


def test_same_rows_give_same_fingerprint_from_every_container_and_layout(tmp_path: Path) -> None:
    frame = _frame()
    expected = fingerprint_dataset(frame)
    table = pa.Table.from_pandas(frame, preserve_index=False)

    in_memory = [table, table.to_batches()[0], pa.Table.from_batches(table.to_batches(1))]
    in_memory += [_rechunked(table, sizes) for sizes in ([1], [3, 1, 10], [7], [49, 1])]
    assert len(in_memory[-2].to_batches()) == 8  # 50 rows in chunks of 7

    frame.to_csv(tmp_path / "data.csv", index=False)
    with gzip.open(tmp_path / "data.csv.gz", "wt", encoding="utf-8") as handle:
        frame.to_csv(handle, index=False)
    pq.write_table(table, tmp_path / "small_groups.parquet", row_group_size=4)
    folder = tmp_path / "split"
    (folder / "b").mkdir(parents=True)
    pq.write_table(table.slice(0, 13), folder / "a-0.parquet", row_group_size=5)
    pq.write_table(table.slice(13, 30), folder / "b" / "part-1.pq", row_group_size=2)
    pq.write_table(table.slice(43), folder / "c-2.parquet")
    (folder / "_SUCCESS").write_text("")
    files = ["data.csv", "data.csv.gz", "small_groups.parquet", "split"]

    for candidate in [*in_memory, *(tmp_path / name for name in files)]:
        got = fingerprint_dataset(candidate)
        assert (got.sha256, got.schema, got.rows) == (expected.sha256, expected.schema, 50)
    for batch_rows in (1, 2, 17, 1_000_000):
        assert fingerprint_dataset(frame, batch_rows=batch_rows) == expected
        assert fingerprint_dataset(folder, batch_rows=batch_rows).sha256 == expected.sha256


def test_fingerprint_reports_canonical_schema_rows_and_source(tmp_path: Path) -> None:
    got = fingerprint_dataset(_frame())
    assert got.schema == (
        ("age", "int64"),
        ("score", "float64"),
        ("name", "string"),
        ("member", "bool"),
        ("seen", "timestamp[ns]"),
    )
    assert got.rows == 50
    assert got.source == "pandas.DataFrame"
    assert len(got.sha256) == len(got.schema_sha256) == 64
    path = tmp_path / "data.parquet"
    _frame().to_parquet(path)
    assert fingerprint_dataset(str(path)).source == str(path.resolve())
    assert fingerprint_dataset(pa.table({"a": [1]})).source == "pyarrow.Table"
    assert fingerprint_dataset(pa.record_batch({"a": [1]})).source == "pyarrow.RecordBatch"
    assert fingerprint_dataset(np.arange(3)).source == "numpy.ndarray"


def test_one_changed_value_changes_content_but_not_shape() -> None:
    frame = _frame()
    changed = frame.copy()
    changed.loc[3, "name"] = "changed"
    before, after = fingerprint_dataset(frame), fingerprint_dataset(changed)
    assert before.sha256 != after.sha256
    assert before.schema_sha256 == after.schema_sha256


def test_a_value_turning_missing_changes_the_fingerprint() -> None:
    base = pa.table({"x": pa.array([0, 1], pa.int64()), "s": ["", "a"]})
    assert fingerprint_dataset(base) != fingerprint_dataset(
        pa.table({"x": pa.array([None, 1], pa.int64()), "s": ["", "a"]})
    )
    assert fingerprint_dataset(base) != fingerprint_dataset(
        pa.table({"x": pa.array([0, 1], pa.int64()), "s": [None, "a"]})
    )


def test_added_column_or_changed_type_changes_shape() -> None:
    frame = _frame()
    base = fingerprint_dataset(frame)
    added = fingerprint_dataset(frame.assign(extra=1))
    retyped = fingerprint_dataset(frame.assign(age=frame["age"].astype("string")))
    renamed = fingerprint_dataset(frame.rename(columns={"age": "years"}))
    shapes = {base.schema_sha256, added.schema_sha256, retyped.schema_sha256, renamed.schema_sha256}
    assert len(shapes) == 4
    assert len({base.sha256, added.sha256, retyped.sha256, renamed.sha256}) == 4


def test_row_order_matters() -> None:
    frame = _frame()
    reversed_rows = frame.iloc[::-1].reset_index(drop=True)
    assert fingerprint_dataset(frame).sha256 != fingerprint_dataset(reversed_rows).sha256


def test_nan_and_null_are_the_same_missing_value() -> None:
    with_null = fingerprint_dataset(pa.table({"0": pa.array([1.5, None, 3.0])})).sha256
    arrow_nan = pa.table({"0": pa.array([1.5, float("nan"), 3.0])})
    assert arrow_nan.column(0).null_count == 0
    assert fingerprint_dataset(arrow_nan).sha256 == with_null
    assert fingerprint_dataset(np.array([1.5, np.nan, 3.0])).sha256 == with_null
    assert fingerprint_dataset(pd.DataFrame({"0": [1.5, np.nan, 3.0]})).sha256 == with_null


def test_integer_widths_and_float_widths_agree() -> None:
    values = [1, None, -3, 127]
    wide = fingerprint_dataset(pa.table({"v": pa.array(values, pa.int64())}))
    for narrow_type in (pa.int8(), pa.int16(), pa.int32()):
        narrow = fingerprint_dataset(pa.table({"v": pa.array(values, narrow_type)}))
        assert narrow == wide
    unsigned = fingerprint_dataset(pa.table({"v": pa.array([1, 2], pa.uint16())}))
    assert unsigned == fingerprint_dataset(pa.table({"v": pa.array([1, 2], pa.int64())}))
    single = fingerprint_dataset(pa.table({"f": pa.array([0.5, 2.0], pa.float32())}))
    assert single == fingerprint_dataset(pa.table({"f": pa.array([0.5, 2.0], pa.float64())}))


def test_strings_agree_whatever_the_chunk_boundaries_encoding_and_offsets() -> None:
    values = ["a", "bc", None, "", "déf", "ghij"]
    expected = fingerprint_dataset(pa.table({"s": pa.array(values)}))
    layouts = [
        pa.chunked_array([values[:1], values[1:4], values[4:]]),
        pa.chunked_array([[v] for v in values], pa.string()),
        pa.chunked_array([pa.array(values, pa.large_string())]),
        pa.chunked_array([pa.array(["x", *values]).slice(1)]),
        pa.chunked_array([pa.array(values).dictionary_encode()]),
    ]
    for column in layouts:
        assert fingerprint_dataset(pa.table({"s": column})) == expected
    categorical = pd.DataFrame({"s": pd.Categorical(values)})
    assert fingerprint_dataset(categorical).sha256 == expected.sha256


def test_bytes_moved_between_neighbouring_strings_change_the_fingerprint() -> None:
    assert fingerprint_dataset(pa.table({"s": ["ab", "c"]})) != fingerprint_dataset(
        pa.table({"s": ["a", "bc"]})
    )


def test_timestamp_units_agree_and_timezone_is_part_of_the_type() -> None:
    seconds = pa.array([0, 60, None], pa.timestamp("s"))
    nanos = pa.array([0, 60_000_000_000, None], pa.timestamp("ns"))
    assert fingerprint_dataset(pa.table({"t": seconds})) == fingerprint_dataset(
        pa.table({"t": nanos})
    )
    aware = fingerprint_dataset(pa.table({"t": seconds.cast(pa.timestamp("s", "UTC"))}))
    assert aware.schema == (("t", "timestamp[ns, tz=UTC]"),)
    assert aware.schema_sha256 != fingerprint_dataset(pa.table({"t": seconds})).schema_sha256


def test_nested_and_exotic_columns_are_independent_of_chunking() -> None:
    table = pa.table(
        {
            "tags": pa.array([["a", "b"], None, [], ["c"]] * 5),
            "embedding": pa.array([[0.1, float("nan")], [0.3, 0.4], None, [1.0, 2.0]] * 5),
            "point": pa.array([{"x": 1, "y": "p"}, None, {"x": None, "y": "q"}, {"x": 4}] * 5),
            "props": pa.array(
                [[("k", 1)], None, [], [("z", 2), ("k", 3)]] * 5, pa.map_(pa.string(), pa.int64())
            ),
            "price": pa.array([None, 1, 2, 3] * 5, pa.decimal128(10, 2)),
        }
    )
    expected = fingerprint_dataset(table)
    assert dict(expected.schema)["tags"] == "list<string>"
    assert dict(expected.schema)["point"] == "struct<x: int64, y: string>"
    assert dict(expected.schema)["price"] == "decimal(10, 2)"
    for sizes in ([1], [3], [6, 1]):
        assert fingerprint_dataset(_rechunked(table, sizes)) == expected
    assert fingerprint_dataset(table.slice(1)) != fingerprint_dataset(table.slice(0, 19))


def test_numpy_arrays_become_numbered_columns() -> None:
    one_d = fingerprint_dataset(np.array([1, 2, 3], dtype=np.int32))
    assert one_d.sha256 == fingerprint_dataset(pa.table({"0": [1, 2, 3]})).sha256
    two_d = fingerprint_dataset(np.array([[1.0, 2.0], [3.0, np.nan]]))
    assert two_d.schema == (("0", "float64"), ("1", "float64"))
    assert two_d.sha256 == fingerprint_dataset(pa.table({"0": [1.0, 3.0], "1": [2.0, None]})).sha256
    with pytest.raises(UnsupportedDatasetError, match="3-D"):
        fingerprint_dataset(np.zeros((2, 2, 2)))


def test_series_is_one_column_named_after_it() -> None:
    named = fingerprint_dataset(pd.Series([1, 2, 3], name="clicks"))
    assert named.schema == (("clicks", "int64"),)
    assert named.sha256 == fingerprint_dataset(pd.DataFrame({"clicks": [1, 2, 3]})).sha256
    unnamed = fingerprint_dataset(pd.Series([1, 2, 3]))
    assert unnamed.sha256 == fingerprint_dataset(np.array([1, 2, 3])).sha256
    assert unnamed.source == "pandas.Series"


def test_unnamed_index_is_ignored_and_named_index_is_trailing_data(tmp_path: Path) -> None:
    frame = _frame()
    filtered = frame[frame["score"] > 0]
    assert fingerprint_dataset(filtered) == fingerprint_dataset(filtered.reset_index(drop=True))
    filtered.to_parquet(tmp_path / "filtered.parquet")  # stores __index_level_0__
    assert fingerprint_dataset(tmp_path / "filtered.parquet").sha256 == (
        fingerprint_dataset(filtered).sha256
    )

    keyed = frame.set_index("name")
    got = fingerprint_dataset(keyed)
    assert got.schema[-1] == ("name", "string")
    assert got.sha256 != fingerprint_dataset(keyed.reset_index(drop=True)).sha256
    keyed.to_parquet(tmp_path / "keyed.parquet")
    assert fingerprint_dataset(tmp_path / "keyed.parquet").sha256 == got.sha256


def test_empty_tables_fingerprint_deterministically() -> None:
    empty = fingerprint_dataset(pd.DataFrame())
    assert empty == fingerprint_dataset(pd.DataFrame())
    assert (empty.rows, empty.schema) == (0, ())
    assert empty.sha256 == fingerprint_dataset(pa.table({})).sha256
    no_rows = fingerprint_dataset(_frame().iloc[:0])
    assert no_rows.rows == 0
    assert no_rows.schema == fingerprint_dataset(_frame()).schema
    assert no_rows.sha256 != empty.sha256
    rows_only = fingerprint_dataset(pd.DataFrame(index=range(3)))
    assert (rows_only.rows, rows_only.schema) == (3, ())
    assert rows_only.sha256 != empty.sha256
    assert rows_only.sha256 == fingerprint_dataset(np.zeros((3, 0))).sha256


def test_csv_column_that_stops_fitting_its_inferred_type_is_widened(tmp_path: Path) -> None:
    # Arrow infers from the first 1 MB block only; the odd values sit far beyond it.
    rows = 200_000
    ints = list(range(rows))
    path = tmp_path / "late.csv"
    lines = [f"{i},{i % 3 == 0},{'x' if i == rows - 1 else i}" for i in ints]
    path.write_text("n,flag,code\n" + "\n".join(lines) + "\n2.5,maybe,7\n")
    got = fingerprint_dataset(path)
    assert got.schema == (("n", "float64"), ("flag", "string"), ("code", "string"))
    assert got.rows == rows + 1
    expected = pa.table(
        {
            "n": [float(i) for i in ints] + [2.5],
            "flag": [str(i % 3 == 0) for i in ints] + ["maybe"],
            "code": [str(i) for i in ints[:-1]] + ["x", "7"],
        }
    )
    assert got.sha256 == fingerprint_dataset(expected).sha256


def test_csv_empty_fields_are_null_like_pandas(tmp_path: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("a,b\nx,p\n,\nz,r\n")
    assert fingerprint_dataset(path).sha256 == fingerprint_dataset(pd.read_csv(path)).sha256


@pytest.mark.parametrize("data", [[1, 2], {"a": [1]}, 3, b"data.csv", None])
def test_unsupported_objects_raise_naming_the_type(data: object) -> None:
    with pytest.raises(UnsupportedDatasetError) as caught:
        fingerprint_dataset(data)
    assert type(data).__name__ in str(caught.value)
    assert "supported:" in str(caught.value)


def test_unsupported_file_suffix_raises_naming_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedDatasetError, match=r"\.xlsx.*supported: .*\.parquet"):
        fingerprint_dataset(path)


def test_unconvertible_dataframe_is_unsupported_not_a_raw_arrow_error() -> None:
    mixed = pd.DataFrame({"mixed": [1, "two", 3.0]})
    with pytest.raises(UnsupportedDatasetError, match="mixed") as caught:
        fingerprint_dataset(mixed)
    assert isinstance(caught.value.__cause__, pa.ArrowException)


def test_missing_file_raises_read_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "train.parquet"
    with pytest.raises(DatasetReadError, match="no such file") as caught:
        fingerprint_dataset(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("name", ["broken.parquet", "broken.csv.gz"])
def test_corrupt_file_raises_read_error_naming_the_path_and_reason(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00garbage, not a dataset\xff" * 10)
    with pytest.raises(DatasetReadError) as caught:
        fingerprint_dataset(path)
    message = str(caught.value)
    assert str(path) in message
    assert len(message) > len(f"cannot read dataset file {path}: ")
    assert isinstance(caught.value, ModelrailError)
    assert caught.value.__cause__ is not None


def test_parquet_folder_with_mismatched_files_raises_naming_the_file(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "part-0.parquet")
    pq.write_table(pa.table({"a": ["x"]}), tmp_path / "part-1.parquet")
    with pytest.raises(DatasetReadError, match=r"part-1\.parquet.*differ"):
        fingerprint_dataset(tmp_path)


def test_folder_without_parquet_files_raises_read_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no data here")
    with pytest.raises(DatasetReadError, match="no Parquet files"):
        fingerprint_dataset(tmp_path)


def test_fingerprint_is_a_frozen_value() -> None:
    got = fingerprint_dataset(pa.table({"a": [1]}))
    assert isinstance(got, DatasetFingerprint)
    with pytest.raises(AttributeError):
        got.rows = 2  # type: ignore[misc]


_STREAMING_CHILD = textwrap.dedent(
    """
    import io, json, resource, sys, time
    import numpy as np, pyarrow as pa, pyarrow.csv as pacsv
    from modelrail.tracking.datasets import fingerprint_dataset

    path, target = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    chunk_rows = 20_000
    header_written, rows = False, 0
    with open(path, "wb") as out:
        while out.tell() < target:
            table = pa.table({
                "id": np.arange(rows, rows + chunk_rows),
                "x": rng.normal(size=chunk_rows),
                "label": rng.choice(["cat", "dog", "bird"], chunk_rows),
            })
            sink = io.BytesIO()
            options = pacsv.WriteOptions(include_header=not header_written)
            pacsv.write_csv(table, sink, options)
            out.write(sink.getvalue())
            header_written, rows = True, rows + chunk_rows
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    fingerprint = fingerprint_dataset(path)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": rows, "got_rows": fingerprint.rows, "seconds": seconds,
                      "growth_mb": (after - before) / 1024, "before_mb": before / 1024}))
    """
)


@pytest.mark.slow
def test_large_csv_is_streamed_with_bounded_memory(tmp_path: Path) -> None:
    # A child process, so the parent's own peak RSS (ru_maxrss is a high-water mark) cannot
    # hide growth; the file is written in 20k-row chunks so writing it stays small too.
    src = Path(datasets_module.__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    target = 400 * 2**20
    path = tmp_path / "big.csv"
    done = subprocess.run(
        [sys.executable, "-c", _STREAMING_CHILD, str(path), str(target)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert path.stat().st_size >= target
    assert report["got_rows"] == report["rows"]
    assert report["growth_mb"] < 200, report

"""Batch inputs: files and queries read as Arrow batches, with the errors a user sees."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, text

from modelrail.batch import parquet_read
from modelrail.batch.sources import Source, open_source
from modelrail.batch.spec import JobSpec
from modelrail.errors import BatchInputError
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, postgres_schema_url


def job(*inputs: str, query: str | None = None, query_url: str | None = None) -> JobSpec:
    return JobSpec(
        reference="model:1",
        output="out.parquet",
        id_columns=("id",),
        inputs=inputs,
        query=query,
        query_url=query_url,
    )


def rows_table(start: int, count: int) -> pa.Table:
    ids = range(start, start + count)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array([i / 2 for i in ids], pa.float64()),
            "s": pa.array([f"row {i}" for i in ids], pa.string()),
        }
    )


def write_parquet(path: Path, table: pa.Table, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_csv(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ",".join(table.column_names)
    lines = [",".join(str(value) for value in row.values()) for row in table.to_pylist()]
    content = "\n".join([header, *lines]) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(content.encode()))
    else:
        path.write_text(content)
    return path


def read_all(source: Source, rows: int = 1000, start_row: int = 0) -> pa.Table:
    batches = list(source.batches(rows, start_row=start_row))
    return pa.Table.from_batches(batches, schema=source.schema)


def ids(source: Source, rows: int = 1000) -> list[int]:
    return read_all(source, rows).column("id").to_pylist()


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- finding files -------------------------------------------------------------------


def test_glob_reads_matching_files_in_sorted_order(cwd: Path) -> None:
    write_parquet(cwd / "data" / "b.parquet", rows_table(10, 5))
    write_parquet(cwd / "data" / "a.parquet", rows_table(0, 10))
    write_parquet(cwd / "data" / "c.parquet", rows_table(15, 3))
    (cwd / "data" / "notes.txt").write_text("not data")
    source = open_source(job("data/*.parquet"))
    assert ids(source) == list(range(18))
    assert source.total_rows == 18
    assert source.description.startswith("3 Parquet files in data (")
    source.close()


def test_folder_is_searched_recursively_skipping_hidden_and_underscore_files(cwd: Path) -> None:
    write_parquet(cwd / "data" / "day=2" / "part-0.parquet", rows_table(5, 5))
    write_parquet(cwd / "data" / "day=1" / "part-0.parquet", rows_table(0, 5))
    write_parquet(cwd / "data" / "_temporary" / "part-9.parquet", rows_table(100, 5))
    write_parquet(cwd / "data" / ".hidden.parquet", rows_table(200, 5))
    (cwd / "data" / "_SUCCESS").write_text("")
    source = open_source(job("data"))
    assert ids(source) == list(range(10))
    source.close()


def test_recursive_glob_and_several_inputs_are_merged_sorted_without_duplicates(
    cwd: Path,
) -> None:
    write_parquet(cwd / "in" / "x" / "y" / "deep.parquet", rows_table(20, 2))
    write_parquet(cwd / "in" / "top.parquet", rows_table(30, 2))
    write_parquet(cwd / "extra" / "a.parquet", rows_table(0, 2))
    source = open_source(job("in/**/*.parquet", "extra/a.parquet", str(cwd / "in" / "top.parquet")))
    assert ids(source) == [0, 1, 30, 31, 20, 21]  # extra/a, in/top, in/x/y/deep
    source.close()


def test_no_matching_file_names_the_pattern(cwd: Path) -> None:
    (cwd / "empty").mkdir()
    for pattern in ("data/*.parquet", "missing.parquet", "empty"):
        with pytest.raises(BatchInputError, match=re.escape(f"no input file matches {pattern!r}")):
            open_source(job(pattern))


def test_mixing_parquet_and_csv_names_both_files(cwd: Path) -> None:
    write_parquet(cwd / "data" / "a.parquet", rows_table(0, 3))
    write_csv(cwd / "data" / "b.csv", rows_table(3, 3))
    with pytest.raises(BatchInputError, match=r"Parquet \(data/a.parquet\) and CSV \(data/b.csv\)"):
        open_source(job("data"))


def test_file_with_unknown_extension_is_refused(cwd: Path) -> None:
    (cwd / "rows.txt").write_text("id\n1\n")
    with pytest.raises(BatchInputError, match=r"'rows.txt' is neither Parquet"):
        open_source(job("rows.txt"))


# -- batches and resume ---------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 7, 64, 1000])
def test_parquet_start_row_equals_slicing_the_full_read(cwd: Path, rows: int) -> None:
    write_parquet(cwd / "d" / "1.parquet", rows_table(0, 100), row_group_size=40)
    write_parquet(cwd / "d" / "2.parquet", rows_table(100, 250), row_group_size=40)
    write_parquet(cwd / "d" / "3.parquet", rows_table(350, 37), row_group_size=40)
    source = open_source(job("d"))
    full = read_all(source, 100_000)
    assert full.num_rows == source.total_rows == 387
    for start in (0, 1, 39, 40, 99, 100, 101, 350, 386, 387, 500):
        batches = list(source.batches(rows, start_row=start))
        assert all(batch.num_rows == rows for batch in batches[:-1])
        assert all(0 < batch.num_rows <= rows for batch in batches)
        got = pa.Table.from_batches(batches, schema=source.schema)
        assert got.equals(full.slice(start)), start
    source.close()


@pytest.mark.parametrize("name", ["rows.csv", "rows.csv.gz"])
def test_csv_start_row_equals_slicing_the_full_read(cwd: Path, name: str) -> None:
    write_csv(cwd / "a" / name, rows_table(0, 300))
    write_csv(cwd / "b" / name, rows_table(300, 45))
    source = open_source(job("a", "b"))
    assert source.total_rows is None
    full = read_all(source)
    assert full.column("id").to_pylist() == list(range(345))
    assert full.schema.field("x").type == pa.float64()
    for rows in (1, 50, 1000):
        for start in (0, 1, 299, 300, 344, 345):
            batches = list(source.batches(rows, start_row=start))
            assert all(batch.num_rows == rows for batch in batches[:-1])
            got = pa.Table.from_batches(batches, schema=source.schema)
            assert got.equals(full.slice(start))
    source.close()


def test_columns_are_projected_in_the_order_asked(cwd: Path) -> None:
    write_parquet(cwd / "a.parquet", rows_table(0, 10))
    write_csv(cwd / "a.csv", rows_table(0, 10))
    for name in ("a.parquet", "a.csv"):
        source = open_source(job(name), columns=["s", "id"])
        assert source.schema.names == ["s", "id"]
        table = read_all(source, 4)
        assert table.column_names == ["s", "id"]
        assert table.column("s").to_pylist()[:2] == ["row 0", "row 1"]
        source.close()


def test_missing_column_names_file_and_column(cwd: Path) -> None:
    write_parquet(cwd / "data" / "a.parquet", rows_table(0, 3))
    write_parquet(cwd / "data" / "b.parquet", rows_table(3, 3).drop_columns(["x"]))
    message = r"input column 'x' is missing from data/b.parquet \(it has: id, s\)"
    with pytest.raises(BatchInputError, match=message):
        open_source(job("data"), columns=["id", "x"])
    with pytest.raises(BatchInputError, match=message):
        open_source(job("data"))  # without columns, the first file's columns are needed
    write_csv(cwd / "c.csv", rows_table(0, 3))
    with pytest.raises(BatchInputError, match=r"'y' is missing from c.csv \(it has: id, x, s\)"):
        open_source(job("c.csv"), columns=["y"])


def test_column_type_disagreement_across_files_names_both_files(cwd: Path) -> None:
    write_parquet(cwd / "data" / "a.parquet", rows_table(0, 3))
    other = rows_table(3, 3).set_column(1, "x", pa.array(["1", "2", "3"]))
    write_parquet(cwd / "data" / "b.parquet", other)
    with pytest.raises(
        BatchInputError,
        match=r"input column 'x' is double in data/a.parquet but string in data/b.parquet",
    ):
        open_source(job("data"), columns=["x"])


def test_parquet_columns_are_cast_to_the_given_types(cwd: Path) -> None:
    write_parquet(cwd / "a.parquet", rows_table(0, 5))
    source = open_source(job("a.parquet"), column_types={"id": pa.float64()})
    assert source.schema.field("id").type == pa.float64()
    assert read_all(source).column("id").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    source.close()
    with pytest.raises(
        BatchInputError, match=r"input column 's' of a.parquet is string, which cannot be read as"
    ):
        open_source(job("a.parquet"), column_types={"s": pa.float64()})


def test_csv_is_read_with_the_given_column_types(cwd: Path) -> None:
    write_csv(cwd / "a.csv", rows_table(0, 5))
    source = open_source(job("a.csv"), column_types={"id": pa.float32()})
    assert source.schema.field("id").type == pa.float32()
    assert read_all(source).column("id").type == pa.float32()
    source.close()


def test_csv_value_that_does_not_parse_names_file_column_and_value(cwd: Path) -> None:
    content = "id,x\n" + "".join(f"{i},{i}.5\n" for i in range(600_000)) + "600000,oops\n"
    (cwd / "big.csv").write_text(content)
    source = open_source(job("big.csv"), column_types={"x": pa.float64()})
    with pytest.raises(BatchInputError) as caught:
        for _ in source.batches(1000):
            pass
    assert "cannot read big.csv as CSV: column 'x'" in str(caught.value)
    assert "invalid value 'oops'" in str(caught.value)
    source.close()
    (cwd / "small.csv").write_text("id,x\n1,abc\n")  # in the first block: fails at open
    with pytest.raises(BatchInputError, match=r"small.csv as CSV: column 'x'.*'abc'"):
        open_source(job("small.csv"), column_types={"x": pa.float64()})


# -- broken files ------------------------------------------------------------------------


def test_corrupt_or_truncated_parquet_names_the_file(cwd: Path) -> None:
    (cwd / "data").mkdir()
    (cwd / "data" / "fake.parquet").write_text("id,x\n1,2\n")
    with pytest.raises(BatchInputError, match=r"cannot read data/fake.parquet as Parquet"):
        open_source(job("data/fake.parquet"))
    good = write_parquet(cwd / "good.parquet", rows_table(0, 1000)).read_bytes()
    (cwd / "data" / "cut.parquet").write_bytes(good[: len(good) // 2])
    with pytest.raises(BatchInputError, match=r"cannot read data/cut.parquet as Parquet"):
        open_source(job("data/cut.parquet"))


def damage(path: Path, offset: int) -> None:
    """4,000 random bytes written over the file from ``offset`` on."""
    raw = bytearray(path.read_bytes())
    raw[offset : offset + 4000] = os.urandom(4000)
    path.write_bytes(bytes(raw))


def assert_read_fails_naming(name: str, *, parallel: bool = False) -> None:
    source = open_source(job(name))
    with pytest.raises(BatchInputError, match=rf"cannot read {re.escape(name)} as Parquet"):
        for _ in source.batches(10_000, parallel=parallel):
            pass
    source.close()


def test_corrupt_parquet_pages_fail_when_reached_naming_the_file(cwd: Path) -> None:
    table = pa.table({"id": pa.array(range(50_000), pa.int64())})
    path = write_parquet(cwd / "pages.parquet", table)
    damage(path, 100)  # the data pages; the footer stays intact
    assert_read_fails_naming(path.name)


def wide_table(rows: int) -> pa.Table:
    """Columns of several types and sizes, with nulls, so the two halves a file's columns
    are decoded in (one on a second thread) differ in width and content."""
    rng = np.random.default_rng(5)
    floats = rng.normal(size=rows)
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "x": pa.array(floats, pa.float64()),
            "label": pa.array([f"label {i % 17}" for i in range(rows)], pa.string()),
            "maybe": pa.array([None if i % 5 == 0 else i * 0.5 for i in range(rows)]),
            "flag": pa.array([i % 3 == 0 for i in range(rows)], pa.bool_()),
            "small": pa.array([i % 100 for i in range(rows)], pa.int32()),
        }
    )


@pytest.mark.parametrize(("group_rows", "batch_rows"), [(1000, 333), (97, 1000), (5000, 64)])
def test_parquet_columns_decoded_in_two_halves_line_up(
    cwd: Path, group_rows: int, batch_rows: int
) -> None:
    table = wide_table(5000)
    write_parquet(cwd / "wide.parquet", table, row_group_size=group_rows)
    source = open_source(job("wide.parquet"))
    batches = list(source.batches(batch_rows, parallel=True))
    source.close()
    assert all(batch.num_rows == batch_rows for batch in batches[:-1])
    assert pa.Table.from_batches(batches).equals(table)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("batch-reader")]


def test_damaged_column_decoded_on_the_second_thread_names_the_file(cwd: Path) -> None:
    table = pa.table(
        {
            "id": pa.array(range(50_000), pa.int64()),
            "x": pa.array(np.arange(50_000) * 0.5),
            "s": pa.array([f"text {i}" for i in range(50_000)]),
        }
    )
    path = write_parquet(cwd / "halves.parquet", table)
    metadata = pq.read_metadata(path)
    names = ["id", "x", "s"]
    halves = parquet_read._halves(metadata, [0], names)
    assert halves is not None
    second = names.index(halves[1][0])  # a column the second thread decodes
    start = metadata.row_group(0).column(second).data_page_offset
    damage(path, start + 64)
    assert_read_fails_naming(path.name, parallel=True)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("batch-reader")]


def test_stopping_a_parquet_read_early_stops_its_second_thread(cwd: Path) -> None:
    write_parquet(cwd / "wide.parquet", wide_table(20_000), row_group_size=1000)
    source = open_source(job("wide.parquet"))
    batches = source.batches(100, parallel=True)
    first = next(batches)
    assert first.num_rows == 100
    assert any(t.name == "batch-reader-2" for t in threading.enumerate())
    batches.close()  # type: ignore[attr-defined]
    source.close()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("batch-reader")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_names_the_file(cwd: Path) -> None:
    path = write_parquet(cwd / "locked.parquet", rows_table(0, 3))
    path.chmod(0)
    with pytest.raises(BatchInputError, match=r"locked.parquet"):
        open_source(job("locked.parquet"))


# -- fingerprints ---------------------------------------------------------------------------


def _fingerprint_in_subprocess(folder: Path) -> str:
    code = (
        "import sys\n"
        "from modelrail.batch.sources import open_source\n"
        "from modelrail.batch.spec import JobSpec\n"
        "source = open_source(JobSpec('m:1', 'o', ('id',), inputs=(sys.argv[1],)))\n"
        "print(source.fingerprint())\n"
        "source.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_fingerprint_is_stable_across_processes_and_changes_with_any_byte(cwd: Path) -> None:
    write_csv(cwd / "data" / "a.csv", rows_table(0, 50_000))
    write_csv(cwd / "data" / "b.csv", rows_table(50_000, 10))
    source = open_source(job("data"))
    first = source.fingerprint()
    source.close()
    assert len(first) == 64 and int(first, 16) >= 0
    assert _fingerprint_in_subprocess(cwd / "data") == first
    path = cwd / "data" / "a.csv"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1  # one bit in the middle of a file, same size
    path.write_bytes(bytes(raw))
    changed = open_source(job("data"))
    assert changed.fingerprint() != first
    changed.close()
    path.rename(cwd / "data" / "a2.csv")  # the same bytes under another name
    renamed = open_source(job("data"))
    assert renamed.fingerprint() not in (first, changed.fingerprint())
    renamed.close()


# -- queries ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def query_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database holding ``scores(id, x, label)`` with 5,000 rows."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'rows.db'}"
        urls: Iterator[str] = iter([url])
    else:
        if not POSTGRES_URL:
            if REQUIRE_POSTGRES:
                pytest.fail("MODELRAIL_TEST_REQUIRE_POSTGRES=1 but no MODELRAIL_TEST_POSTGRES_URL")
            pytest.skip("set MODELRAIL_TEST_POSTGRES_URL to run the PostgreSQL variant")
        urls = postgres_schema_url(POSTGRES_URL)
    url = next(urls)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE scores (id BIGINT, x DOUBLE PRECISION, label TEXT)"))
        conn.execute(
            text("INSERT INTO scores VALUES (:id, :x, :label)"),
            [{"id": i, "x": i / 4, "label": f"n{i % 7}"} for i in range(5000)],
        )
    engine.dispose()
    yield url
    for _ in urls:  # drops the PostgreSQL schema
        pass


def test_query_streams_its_rows_in_batches(query_url: str) -> None:
    query = "SELECT id, x, label FROM scores ORDER BY id"
    # closing(): an open cursor would keep the test schema from being dropped
    with closing(open_source(job(query=query, query_url=query_url))) as source:
        assert source.total_rows is None
        assert source.schema == pa.schema(
            [("id", pa.int64()), ("x", pa.float64()), ("label", pa.string())]
        )
        assert source.description.startswith(f"query on {query_url.split(':')[0]}")
        batches = list(source.batches(1024))
        assert [batch.num_rows for batch in batches] == [1024] * 4 + [904]
        table = pa.Table.from_batches(batches)
        assert table.column("id").to_pylist() == list(range(5000))
        assert table.column("x").to_pylist()[:3] == [0.0, 0.25, 0.5]
        again = pa.Table.from_batches(source.batches(999, start_row=4000))  # runs it again
        assert again.equals(table.slice(4000))


def test_query_columns_and_types_are_applied(query_url: str) -> None:
    query = "SELECT * FROM scores WHERE id < 10 ORDER BY id"
    types = {"id": pa.float64()}
    spec = job(query=query, query_url=query_url)
    with closing(open_source(spec, columns=["x", "id"], column_types=types)) as source:
        assert source.schema == pa.schema([("x", pa.float64()), ("id", pa.float64())])
        assert read_all(source, 3).column("id").to_pylist() == [float(i) for i in range(10)]
    with pytest.raises(BatchInputError, match=r"input column 'nope' is missing from the query"):
        open_source(job(query="SELECT id FROM scores", query_url=query_url), columns=["nope"])


def test_empty_query_result_yields_nothing_but_has_a_schema(query_url: str) -> None:
    query = "SELECT id, x, label FROM scores WHERE id < 0"
    spec = job(query=query, query_url=query_url)
    with closing(open_source(spec, column_types={"label": pa.string()})) as source:
        assert source.schema.names == ["id", "x", "label"]
        assert source.schema.field("label").type == pa.string()
        assert source.schema.field("x").type == pa.float64()
        # PostgreSQL tells each column's type; SQLite does not, so float64 stands in
        postgres = query_url.startswith("postgresql")
        assert source.schema.field("id").type == (pa.int64() if postgres else pa.float64())
        assert list(source.batches(100)) == []


def test_query_value_of_another_type_names_the_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mixed.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER, x REAL)"))
        conn.execute(text("INSERT INTO t VALUES (:id, :x)"), [{"id": i, "x": i} for i in range(50)])
        conn.execute(text("INSERT INTO t VALUES (50, 'oops')"))
    engine.dispose()
    spec = job(query="SELECT id, x FROM t ORDER BY id", query_url=url)
    source = open_source(spec, column_types={"x": pa.float64()})
    with pytest.raises(BatchInputError, match=r"query column 'x' on sqlite.* not double") as e:
        list(source.batches(20))
    source.close()
    assert "oops" in str(e.value)


def test_bad_sql_fails_with_the_database_message(query_url: str) -> None:
    with pytest.raises(BatchInputError, match=r"the query failed on .*no_such_table") as caught:
        open_source(job(query="SELECT * FROM no_such_table", query_url=query_url))
    assert "Traceback" not in str(caught.value)


def test_query_fingerprint_covers_url_and_query_text_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    (tmp_path / "f.db").touch()
    query = "SELECT 1 AS id"
    one = open_source(job(query=query, query_url=url))
    two = open_source(job(query=query, query_url=url))
    other = open_source(job(query="SELECT 2 AS id", query_url=url))
    assert one.fingerprint() == two.fingerprint() != other.fingerprint()
    assert len(one.fingerprint()) == 64
    for source in (one, two, other):
        source.close()


def test_unreachable_database_hides_the_password(tmp_path: Path) -> None:
    url = "postgresql://scorer:s3cret@127.0.0.1:1/nowhere?connect_timeout=2"
    with pytest.raises(
        BatchInputError, match=r"cannot connect to postgresql://scorer:\*\*\*@"
    ) as e:
        open_source(job(query="SELECT 1", query_url=url))
    assert "s3cret" not in str(e.value)
    with pytest.raises(BatchInputError, match=r"database file .*missing.db does not exist"):
        open_source(job(query="SELECT 1", query_url=f"sqlite:///{tmp_path / 'missing.db'}"))
    with pytest.raises(BatchInputError, match=r"malformed query_url 'nonsense://u:\*\*\*@"):
        open_source(job(query="SELECT 1", query_url="nonsense://u:s3cret@h:port/db"))


# -- bounded memory ---------------------------------------------------------------------------

_MEMORY_PROBE = """
import resource, sys
from pathlib import Path
from modelrail.batch.sources import open_source
from modelrail.batch.spec import JobSpec
source = open_source(JobSpec("m:1", "o", ("c0",), inputs=(sys.argv[1],)))
rows = sum(batch.num_rows for batch in source.batches(65_536))
source.fingerprint()
source.close()
# ru_maxrss survives execve on Linux: it would include the peak of the pytest process that
# spawned us. VmHWM is this process's own peak resident size.
status = Path("/proc/self/status")
if status.exists():
    line = next(l for l in status.read_text().splitlines() if l.startswith("VmHWM:"))
    peak_kb = int(line.split()[1])
else:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(rows, peak_kb // 1024)
"""


@pytest.mark.slow
def test_reading_a_large_parquet_file_keeps_memory_bounded(tmp_path: Path) -> None:
    piece_rows, pieces, width = 131_072, 24, 30  # 3.1 M rows x 30 float64 = 755 MB in memory
    rng = np.random.default_rng(0)
    # Random doubles do not compress: the file is as big as the table, so reading it whole
    # (pyarrow's pre_buffer does that to every row group it is given) would show.
    piece = pa.table({f"c{i}": rng.normal(size=piece_rows) for i in range(width)})
    path = tmp_path / "big.parquet"
    plain = {"compression": "none", "use_dictionary": False, "write_statistics": False}
    with pq.ParquetWriter(path, piece.schema, **plain) as writer:
        for _ in range(pieces):
            writer.write_table(piece)
    in_memory_mb = piece.nbytes * pieces / 1e6
    assert in_memory_mb > 700
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows, peak_mb = (int(word) for word in done.stdout.split())
    assert rows == piece_rows * pieces
    assert peak_mb < 250, f"peak RSS {peak_mb} MB reading a {in_memory_mb:.0f} MB table"

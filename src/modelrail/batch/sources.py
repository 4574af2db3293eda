"""Where a batch job's rows come from: Parquet or CSV files, or a SQL query, as Arrow batches.

Memory stays bounded whatever the input size: files are streamed (Parquet row group by row
group, CSV block by block) and query results are fetched in chunks through a server-side
cursor. Batches come out with exactly ``rows`` rows except the last, in a fixed order (files
sorted by resolved path), so a run can resume at any row with ``start_row``.

A file source's fingerprint is the sha256 of every file's name (relative to the files' common
folder), size and bytes, hashed in a background thread while scoring runs. A query source's
fingerprint covers its database URL (without password) and query text only: the rows the query
returns are not hashed. Query columns whose type cannot be told (all NULL in the first chunk,
or an empty result, and no ``column_types`` entry) are read as float64, as are CSV columns
empty throughout the first block of the first file.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Connection, CursorResult, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from modelrail.batch.spec import JobSpec
from modelrail.errors import BatchInputError

_HASH_CHUNK = 1 << 20
_CSV_BLOCK = 4 << 20  # bytes of text per CSV block
_READ_ERRORS = (pa.ArrowException, OSError, ValueError)
_PG_TYPES = {16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(), 700: pa.float64(),
             701: pa.float64(), 25: pa.string(), 1043: pa.string(), 1082: pa.date32(),
             1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC")}  # fmt: skip


class Source(Protocol):
    """Rows to score, as Arrow record batches of a fixed schema."""

    description: str
    schema: pa.Schema
    total_rows: int | None

    def fingerprint(self) -> str: ...

    def batches(self, rows: int, *, start_row: int = 0) -> Iterator[pa.RecordBatch]: ...

    def close(self) -> None: ...


def open_source(
    spec: JobSpec,
    *,
    columns: Sequence[str] | None = None,
    column_types: Mapping[str, pa.DataType] | None = None,
) -> Source:
    """Open the job's inputs (files or query); every file's columns are checked here."""
    types = dict(column_types or {})
    wanted = list(columns) if columns is not None else None
    if spec.query is not None:
        return _QuerySource(spec.query, spec.query_url or "", spec.batch_rows, wanted, types)
    files = _find_files(spec.inputs)
    kinds = {_kind(path): path for path in files}
    if len(kinds) > 1:
        raise BatchInputError(
            f"the inputs mix Parquet ({_shown(kinds['parquet'])}) and CSV "
            f"({_shown(kinds['csv'])}) files: a job reads one format"
        )
    if "parquet" in kinds:
        return _ParquetSource(files, wanted, types)
    return _CsvSource(files, wanted, types)


# -- finding files -------------------------------------------------------------------


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".parquet", ".parq", ".pq")):
        return "parquet"
    return "csv" if name.endswith((".csv", ".csv.gz")) else None


def _listed(parts: Iterable[str]) -> bool:
    """Spark and Hive skip hidden and ``_``-prefixed files and folders (``_SUCCESS``...)."""
    return not any(part.startswith((".", "_")) for part in parts)


def _find_files(inputs: Sequence[str]) -> list[Path]:
    found: set[Path] = set()
    for raw in inputs:
        pattern = os.path.expanduser(raw)
        if any(char in pattern for char in "*?["):
            matches = [Path(match) for match in glob.glob(pattern, recursive=True)]
        else:
            matches = [Path(pattern)] if os.path.exists(pattern) else []
            if matches and matches[0].is_file() and _kind(matches[0]) is None:
                raise BatchInputError(
                    f"input file {raw!r} is neither Parquet (.parquet) nor CSV (.csv, .csv.gz)"
                )
        hits: set[Path] = set()
        for match in matches:
            if match.is_dir():
                hits.update(
                    path
                    for path in match.rglob("*")
                    if _kind(path) and path.is_file() and _listed(path.relative_to(match).parts)
                )
            elif match.is_file() and _kind(match) and _listed([match.name]):
                hits.add(match)
        if not hits:
            raise BatchInputError(
                f"no input file matches {raw!r} (folders are searched for *.parquet, *.csv and "
                "*.csv.gz files, skipping hidden and _-prefixed ones)"
            )
        found.update(path.resolve() for path in hits)
    return sorted(found)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _size(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


# -- shaping batches --------------------------------------------------------------------


def _drop(pieces: Iterable[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    for piece in pieces:
        if skip >= piece.num_rows:
            skip -= piece.num_rows
            continue
        yield piece.slice(skip) if skip else piece
        skip = 0


def _rebatch(pieces: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``rows`` rows (the last may be shorter): slices are zero-copy, only
    a batch made of several pieces is copied."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for piece in pieces:
        offset = 0
        while offset < piece.num_rows:
            take = min(rows - count, piece.num_rows - offset)
            pending.append(piece.slice(offset, take))
            count, offset = count + take, offset + take
            if count == rows:
                yield _combine(pending)
                pending, count = [], 0
    if count:
        yield _combine(pending)


def _combine(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(pieces) == 1:
        return pieces[0]
    return pa.Table.from_batches(pieces).combine_chunks().to_batches()[0]


def _check_batching(rows: int, start_row: int) -> None:
    if rows < 1 or start_row < 0:
        raise ValueError(f"rows must be >= 1 and start_row >= 0, got {rows} and {start_row}")


def _missing(column: str, where: str, names: Sequence[str]) -> BatchInputError:
    return BatchInputError(
        f"input column {column!r} is missing from {where} (it has: {', '.join(names)})"
    )


def _family(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        return _family(kind.value_type)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "binary"
    return "timestamp" if pa.types.is_timestamp(kind) else str(kind)


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    """Numbers to numbers (and booleans to numbers) yes; text to numbers no."""
    if pa.types.is_null(source) or _family(source) == _family(target):
        return True
    return pa.types.is_boolean(source) and _family(target) == "number"


# -- files -------------------------------------------------------------------------------


class _FileSource:
    kind = ""

    def __init__(
        self, files: list[Path], columns: list[str] | None, types: dict[str, pa.DataType]
    ) -> None:
        self.total_rows: int | None = None
        self._files = files
        self._names = [_shown(path) for path in files]
        try:
            self._sizes = [path.stat().st_size for path in files]
        except OSError as exc:
            raise BatchInputError(f"cannot read input file {exc.filename}: {exc.strerror}") from exc
        base = Path(os.path.commonpath([path.parent for path in files]))
        self._relative = [path.relative_to(base).as_posix() for path in files]
        size = _size(sum(self._sizes))
        self.description = (
            f"{len(files)} {self.kind} files in {_shown(base)} ({size})"
            if len(files) > 1
            else f"{self.kind} file {self._names[0]} ({size})"
        )
        self.schema = self._check(columns, types)
        self._stop = threading.Event()
        self._digest: str | None = None
        self._error: OSError | None = None
        self._hasher = threading.Thread(target=self._hash, name="modelrail-fingerprint")
        self._hasher.daemon = True
        self._hasher.start()

    @property
    def files(self) -> tuple[Path, ...]:
        """The input files in reading order (the Spark engine hands them to Spark)."""
        return tuple(self._files)

    def _check(self, columns: list[str] | None, types: dict[str, pa.DataType]) -> pa.Schema:
        raise NotImplementedError

    def _stamped(self) -> Iterator[tuple[Path, str]]:
        return zip(self._files, self._names, strict=True)

    def _hash(self) -> None:
        digest = hashlib.sha256()
        buffer = bytearray(_HASH_CHUNK)
        view = memoryview(buffer)
        try:
            for relative, size, path in zip(self._relative, self._sizes, self._files, strict=True):
                name = relative.encode()
                digest.update(len(name).to_bytes(8, "big") + name + size.to_bytes(8, "big"))
                with open(path, "rb", buffering=0) as handle:
                    while count := handle.readinto(buffer):
                        if self._stop.is_set():
                            return
                        digest.update(view[:count])  # releases the GIL: overlaps scoring
            self._digest = digest.hexdigest()
        except OSError as exc:
            self._error = exc

    def fingerprint(self) -> str:
        self._hasher.join()
        if self._error is not None:
            raise BatchInputError(f"cannot fingerprint the inputs: {self._error}")
        if self._digest is None:
            raise BatchInputError("the inputs were closed before their fingerprint was taken")
        return self._digest

    def close(self) -> None:
        self._stop.set()
        self._hasher.join()


class _ParquetSource(_FileSource):
    kind = "Parquet"

    def _check(self, columns: list[str] | None, types: dict[str, pa.DataType]) -> pa.Schema:
        self._metadata: list[Any] = []
        first: dict[str, tuple[pa.DataType, str]] = {}
        for path, name in zip(self._files, self._names, strict=True):
            try:
                metadata = pq.read_metadata(path)
                schema = metadata.schema.to_arrow_schema()
            except _READ_ERRORS as exc:
                raise BatchInputError(f"cannot read {name} as Parquet: {exc}") from exc
            self._metadata.append(metadata)
            columns = schema.names if columns is None else columns
            for column in columns:
                if column not in schema.names:
                    raise _missing(column, name, schema.names)
                kind = schema.field(column).type
                seen, where = first.setdefault(column, (kind, name))
                if column in types and not _castable(kind, types[column]):
                    raise BatchInputError(
                        f"input column {column!r} of {name} is {kind}, "
                        f"which cannot be read as {types[column]}"
                    )
                if column not in types and kind != seen:
                    raise BatchInputError(
                        f"input column {column!r} is {seen} in {where} but {kind} in {name}"
                    )
        self.total_rows = sum(metadata.num_rows for metadata in self._metadata)
        return pa.schema([(c, types.get(c, first[c][0])) for c in columns or []])

    def batches(self, rows: int, *, start_row: int = 0) -> Iterator[pa.RecordBatch]:
        _check_batching(rows, start_row)
        plan: list[tuple[int, list[int]]] = []
        skip = start_row
        for index, metadata in enumerate(self._metadata):
            groups: list[int] = []
            for group in range(metadata.num_row_groups):
                count = metadata.row_group(group).num_rows
                if not plan and not groups and skip >= count:
                    skip -= count  # whole row groups (and files) are skipped unread
                else:
                    groups.append(group)
            if groups:
                plan.append((index, groups))
        yield from _rebatch(_drop(self._read(plan, rows), skip), rows)

    def _read(self, plan: list[tuple[int, list[int]]], rows: int) -> Iterator[pa.RecordBatch]:
        for index, groups in plan:
            name = self._names[index]
            try:
                with pq.ParquetFile(self._files[index], metadata=self._metadata[index]) as file:
                    for batch in file.iter_batches(rows, groups, self.schema.names, use_threads=False):
                        yield self._conform(batch, name)
            except _READ_ERRORS as exc:
                raise BatchInputError(f"cannot read {name} as Parquet: {exc}") from exc

    def _conform(self, batch: pa.RecordBatch, name: str) -> pa.RecordBatch:
        arrays = []
        for field in self.schema:
            array = batch.column(field.name)
            if array.type != field.type:
                try:
                    array = array.cast(field.type)
                except _READ_ERRORS as exc:
                    raise BatchInputError(
                        f"input column {field.name!r} of {name} cannot be read as "
                        f"{field.type}: {exc}"
                    ) from exc
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


class _CsvSource(_FileSource):
    kind = "CSV"

    def _check(self, columns: list[str] | None, types: dict[str, pa.DataType]) -> pa.Schema:
        self._headers = [_csv_header(path, name) for path, name in self._stamped()]
        for (_, name), header in zip(self._stamped(), self._headers, strict=True):
            columns = header if columns is None else columns
            for column in columns:
                if column not in header:
                    raise _missing(column, name, header)
        wanted = columns or []
        # The first block of the first file fixes the types of the columns not in ``types``.
        convert = pacsv.ConvertOptions(column_types=types, include_columns=wanted)
        reader = self._open(self._files[0], self._names[0], self._headers[0], convert)
        schema = reader.schema
        reader.close()
        fields = []
        for column in wanted:
            kind = types.get(column, schema.field(column).type)
            fields.append((column, pa.float64() if pa.types.is_null(kind) else kind))
        return pa.schema(fields)

    def _open(
        self, path: Path, name: str, header: list[str], convert: pacsv.ConvertOptions
    ) -> pacsv.CSVStreamingReader:
        options = pacsv.ReadOptions(block_size=_CSV_BLOCK)
        try:
            return pacsv.open_csv(path, read_options=options, convert_options=convert)
        except _READ_ERRORS as exc:
            raise self._csv_error(name, header, exc) from exc

    @staticmethod
    def _csv_error(name: str, header: list[str], exc: Exception) -> BatchInputError:
        """pyarrow names a bad column by number (``In CSV column #2: ...``): name it."""
        message = str(exc)
        found = re.match(r"In CSV column #(\d+): (.*)", message, re.DOTALL)
        if found and int(found[1]) < len(header):
            message = f"column {header[int(found[1])]!r}: {found[2]}"
        return BatchInputError(f"cannot read {name} as CSV: {message}")

    def batches(self, rows: int, *, start_row: int = 0) -> Iterator[pa.RecordBatch]:
        _check_batching(rows, start_row)
        yield from _rebatch(_drop(self._read(), start_row), rows)

    def _read(self) -> Iterator[pa.RecordBatch]:
        types = dict(zip(self.schema.names, self.schema.types, strict=True))
        convert = pacsv.ConvertOptions(column_types=types, include_columns=self.schema.names)
        for path, name, header in zip(self._files, self._names, self._headers, strict=True):
            reader = self._open(path, name, header, convert)
            try:
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    except _READ_ERRORS as exc:
                        raise self._csv_error(name, header, exc) from exc
                    yield pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
            finally:
                reader.close()


# -- SQL query ----------------------------------------------------------------------------


def _csv_header(path: Path, name: str) -> list[str]:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as packed:
                return next(csv.reader(packed), [])
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BatchInputError(f"cannot read {name} as CSV: {exc}") from exc


def _reason(exc: Exception) -> str:
    return str(exc.orig if isinstance(exc, DBAPIError) else exc).strip()


class _QuerySource:
    total_rows: int | None = None

    def __init__(
        self,
        query: str,
        raw_url: str,
        prefetch: int,
        columns: list[str] | None,
        types: dict[str, pa.DataType],
    ) -> None:
        try:
            given = make_url(raw_url)
        except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
            shown = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", raw_url)
            raise BatchInputError(
                f"malformed --query-url {shown!r}: expected e.g. "
                "postgresql://user@host/database or sqlite:///path/to/file.db"
            ) from exc
        url: URL = given
        if url.drivername in ("postgres", "postgresql"):
            url = url.set(drivername="postgresql+psycopg")
        self._shown = given.render_as_string(hide_password=True)
        self.description = f"query on {self._shown}"
        identity = f"{url.set(password=None).render_as_string()}\n{query}"
        self._fingerprint = hashlib.sha256(identity.encode()).hexdigest()
        self._query = query
        database = url.database or ""
        sqlite = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
        if sqlite and not Path(database).is_file():
            raise BatchInputError(
                f"cannot connect to {self._shown}: database file {database} does not exist"
            )
        try:
            self._engine = create_engine(url)
        except (NoSuchModuleError, ImportError) as exc:
            raise BatchInputError(f"no database driver for {self._shown}: {exc}") from exc
        self._connection: Connection | None = None
        self._result: CursorResult[Any] | None = None
        self._first: Sequence[Any] | None = self._execute(prefetch)
        try:
            self.schema = self._infer(columns, types)
        except BaseException:
            self.close()  # an open cursor would hold its locks
            raise

    def _infer(self, columns: list[str] | None, types: dict[str, pa.DataType]) -> pa.Schema:
        assert self._result is not None
        names = list(self._result.keys())
        picked = names if columns is None else columns
        for column in picked:
            if column not in names:
                raise _missing(column, f"the query result on {self._shown}", names)
        self._indices = [names.index(column) for column in picked]
        fields = []
        for column, index in zip(picked, self._indices, strict=True):
            kind = types.get(column)
            if kind is None and self._first:
                kind = self._array(column, [row[index] for row in self._first], None).type
            if kind is None or pa.types.is_null(kind):
                code = self._codes[index] if index < len(self._codes) else None
                kind = _PG_TYPES.get(code, pa.float64()) if isinstance(code, int) else pa.float64()
            fields.append((column, kind))
        return pa.schema(fields)

    def _execute(self, rows: int) -> Sequence[Any]:
        self._release()
        try:
            self._connection = self._engine.connect()
        except SQLAlchemyError as exc:
            raise BatchInputError(f"cannot connect to {self._shown}: {_reason(exc)}") from exc
        try:
            result = self._connection.execution_options(yield_per=rows).execute(text(self._query))
        except SQLAlchemyError as exc:
            self.close()
            raise BatchInputError(f"the query failed on {self._shown}: {_reason(exc)}") from exc
        if not result.returns_rows:
            self.close()
            raise BatchInputError(f"the query on {self._shown} returns no rows: use a SELECT")
        self._result = result
        self._codes = [entry[1] for entry in result.cursor.description or []]  # type per column
        return self._fetch(rows)

    def _fetch(self, rows: int) -> Sequence[Any]:
        assert self._result is not None
        try:
            return self._result.fetchmany(rows)
        except SQLAlchemyError as exc:
            raise BatchInputError(f"the query failed on {self._shown}: {_reason(exc)}") from exc

    def fingerprint(self) -> str:
        return self._fingerprint

    def batches(self, rows: int, *, start_row: int = 0) -> Iterator[pa.RecordBatch]:
        _check_batching(rows, start_row)
        chunk = self._first if self._first is not None else self._execute(rows)
        self._first = None  # a second call runs the query again
        yield from _rebatch(self._chunks(chunk, rows, start_row), rows)

    def _chunks(self, chunk: Sequence[Any], rows: int, skip: int) -> Iterator[pa.RecordBatch]:
        while chunk:
            if skip >= len(chunk):
                skip -= len(chunk)  # skipped rows are never turned into Arrow
            else:
                yield self._to_batch(chunk[skip:])
                skip = 0
            chunk = self._fetch(rows)

    def _to_batch(self, chunk: Sequence[Any]) -> pa.RecordBatch:
        values = list(zip(*chunk, strict=True))
        arrays = [
            self._array(field.name, values[index], field.type)
            for field, index in zip(self.schema, self._indices, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _array(self, name: str, values: Sequence[Any], kind: pa.DataType | None) -> pa.Array:
        try:
            array = pa.array(values)  # then a safe cast: pa.array(type=int64) truncates 1.5
            return array if kind is None or array.type == kind else array.cast(kind)
        except (*_READ_ERRORS, TypeError) as exc:
            wanted = f"not {kind}" if kind is not None else "of mixed types"
            raise BatchInputError(
                f"query column {name!r} on {self._shown} has a value {wanted}: {exc}"
            ) from exc

    def _release(self) -> None:
        if self._result is not None:
            self._result.close()  # a server-side cursor outlives its connection otherwise
            self._result = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        self._release()
        self._engine.dispose()

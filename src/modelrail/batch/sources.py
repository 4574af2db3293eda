"""Where a batch job's rows come from: Parquet or CSV files, or a SQL query, as Arrow batches.

Memory stays bounded whatever the input size: Parquet is read row group by row group, CSV block
by block, a query through a server-side cursor chunk by chunk. Batches have exactly ``rows``
rows except the last, in a fixed order (files sorted by resolved path): ``start_row`` resumes.

Fingerprints: for files, the BLAKE3 hash of each file's name (relative to their common folder), size
and bytes, hashed in a background thread while scoring runs; for a query, of its URL (without
password) and text only: the rows it returns are not hashed. Columns whose type cannot be told
(a query column all NULL in the first chunk or an empty result, a CSV column empty in the first
block) and that ``column_types`` does not name are read as float64.
"""

from __future__ import annotations

import csv
import glob
import gzip
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import blake3
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelrail.batch.parquet_read import read_columns
from modelrail.batch.rebatching import check_batching, drop_rows, rebatch
from modelrail.batch.spec import JobSpec
from modelrail.errors import BatchInputError

_HASH_CHUNK = 1 << 20
_CSV_BLOCK = 4 << 20  # bytes of text per CSV block
READ_ERRORS = (pa.ArrowException, OSError, ValueError)
_NUMBER = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)
_TEXT, _TIME = (pa.types.is_string, pa.types.is_large_string), (pa.types.is_timestamp,)
_CASTS = ((_NUMBER, (*_NUMBER, pa.types.is_boolean)), (_TEXT, _TEXT), (_TIME, _TIME))  # to, from


class Source(Protocol):
    """Rows to score, as Arrow record batches of a fixed schema."""

    description: str
    schema: pa.Schema
    total_rows: int | None

    def fingerprint(self) -> str: ...

    def batches(
        self, rows: int, *, start_row: int = 0, parallel: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """``parallel``: decode on a second thread too, where the format allows (Parquet).
        It pays where the output writes faster than one thread decodes, and otherwise only
        holds more batches in memory."""
        ...

    def close(self) -> None: ...


def open_source(
    spec: JobSpec,
    *,
    columns: Sequence[str] | None = None,
    column_types: Mapping[str, pa.DataType] | None = None,
) -> Source:
    """Open the job's files (every file's columns are checked here) or run its query."""
    types = dict(column_types or {})
    wanted = list(columns) if columns is not None else None
    if spec.query is not None:
        from modelrail.batch.query_source import QuerySource

        return QuerySource(spec.query, spec.query_url or "", spec.batch_rows, wanted, types)
    files = _find_files(spec.inputs)
    kinds = {_kind(path): path for path in files}
    if len(kinds) > 1:
        raise BatchInputError(
            f"the inputs mix Parquet ({_shown(kinds['parquet'])}) and CSV "
            f"({_shown(kinds['csv'])}) files: a job reads one format"
        )
    return (_ParquetSource if "parquet" in kinds else _CsvSource)(files, wanted, types)


# -- finding files, shaping batches ------------------------------------------------------


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith((".parquet", ".parq", ".pq")):
        return "parquet"
    return "csv" if name.endswith((".csv", ".csv.gz")) else None


def _listed(path: Path, root: Path) -> bool:
    """Like Spark and Hive, skip hidden and ``_``-prefixed files and folders (``_SUCCESS``)."""
    parts = path.relative_to(root).parts or (path.name,)
    return _kind(path) is not None and not any(p.startswith((".", "_")) for p in parts)


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
        hits = {p for m in matches if m.is_dir() for p in m.rglob("*") if _listed(p, m)}
        hits.update(m for m in matches if not m.is_dir() and _listed(m, m))
        if not hits:
            raise BatchInputError(
                f"no input file matches {raw!r} (folders are searched for *.parquet, *.csv and "
                "*.csv.gz files, skipping hidden and _-prefixed ones)"
            )
        found.update(path.resolve() for path in hits if path.is_file())
    return sorted(found)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _size(count: float) -> str:
    for unit in ("kB", "MB", "GB"):
        count /= 1000
        if count < 1000 or unit == "GB":
            return f"{count:.1f} {unit}"
    raise AssertionError("unreachable")


def missing_column(column: str, where: str, names: Sequence[str]) -> BatchInputError:
    return BatchInputError(
        f"input column {column!r} is missing from {where} (it has: {', '.join(names)})"
    )


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    """Numbers (and booleans) to numbers, text to text, timestamps to timestamps; never text to
    numbers, which would turn a wrong column into NaNs or parse errors half-way through."""
    source = source.value_type if pa.types.is_dictionary(source) else source
    return bool(
        pa.types.is_null(source)
        or source == target
        or any(
            any(test(target) for test in to) and any(test(source) for test in from_)
            for to, from_ in _CASTS
        )
    )


# -- files -------------------------------------------------------------------------------


class _FileSource:
    kind = ""

    def __init__(
        self, files: list[Path], columns: list[str] | None, types: dict[str, pa.DataType]
    ) -> None:
        self.total_rows: int | None = None
        self._files, self._names = files, [_shown(path) for path in files]
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
        self._hash_error: OSError | None = None
        self._hasher = threading.Thread(target=self._hash, name="modelrail-fingerprint")
        self._hasher.daemon = True
        self._hasher.start()

    @property
    def files(self) -> tuple[Path, ...]:
        """The input files in reading order (the Spark engine hands them to Spark)."""
        return tuple(self._files)

    def _check(self, columns: list[str] | None, types: dict[str, pa.DataType]) -> pa.Schema:
        raise NotImplementedError

    def _named(self) -> Iterator[tuple[Path, str]]:
        return zip(self._files, self._names, strict=True)

    def _hash(self) -> None:
        digest, buffer = blake3.blake3(), bytearray(_HASH_CHUNK)
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
            self._hash_error = exc

    def fingerprint(self) -> str:
        self._hasher.join()
        if self._hash_error is not None:
            raise BatchInputError(f"cannot fingerprint the inputs: {self._hash_error}")
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
        for path, name in self._named():
            try:
                self._metadata.append(pq.read_metadata(path))
                schema = self._metadata[-1].schema.to_arrow_schema()
            except READ_ERRORS as exc:
                raise BatchInputError(f"cannot read {name} as Parquet: {exc}") from exc
            columns = schema.names if columns is None else columns
            for column in columns:
                if column not in schema.names:
                    raise missing_column(column, name, schema.names)
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

    def batches(
        self, rows: int, *, start_row: int = 0, parallel: bool = False
    ) -> Iterator[pa.RecordBatch]:
        check_batching(rows, start_row)
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
        yield from rebatch(drop_rows(self._read(plan, rows, parallel), skip), rows)

    def _read(
        self, plan: list[tuple[int, list[int]]], rows: int, parallel: bool
    ) -> Iterator[pa.RecordBatch]:
        for index, groups in plan:
            name = self._names[index]
            try:
                path, metadata = self._files[index], self._metadata[index]
                columns = self.schema.names
                for read in read_columns(path, metadata, groups, columns, rows, parallel):
                    arrays = [
                        self._cast(array, field, name)
                        for array, field in zip(read, self.schema, strict=True)
                    ]
                    yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)
            except READ_ERRORS as exc:
                raise BatchInputError(f"cannot read {name} as Parquet: {exc}") from exc

    @staticmethod
    def _cast(array: pa.Array, field: pa.Field, name: str) -> pa.Array:
        try:
            return array if array.type == field.type else array.cast(field.type)
        except READ_ERRORS as exc:
            raise BatchInputError(
                f"input column {field.name!r} of {name} cannot be read as {field.type}: {exc}"
            ) from exc


class _CsvSource(_FileSource):
    kind = "CSV"

    def _check(self, columns: list[str] | None, types: dict[str, pa.DataType]) -> pa.Schema:
        self._headers = [_csv_header(path, name) for path, name in self._named()]
        for name, header in zip(self._names, self._headers, strict=True):
            columns = header if columns is None else columns
            for column in columns:
                if column not in header:
                    raise missing_column(column, name, header)
        # The first block of the first file fixes the types of the columns not in ``types``.
        with self._open(0, pacsv.ConvertOptions(column_types=types)) as reader:
            first = reader.schema
        fields = []
        for column in columns or []:
            kind = types.get(column, first.field(column).type)
            fields.append((column, pa.float64() if pa.types.is_null(kind) else kind))
        return pa.schema(fields)

    def batches(
        self, rows: int, *, start_row: int = 0, parallel: bool = False
    ) -> Iterator[pa.RecordBatch]:
        check_batching(rows, start_row)
        yield from rebatch(drop_rows(self._read(), start_row), rows)

    def _read(self) -> Iterator[pa.RecordBatch]:
        types = dict(zip(self.schema.names, self.schema.types, strict=True))
        convert = pacsv.ConvertOptions(column_types=types, include_columns=self.schema.names)
        for index in range(len(self._files)):
            with self._open(index, convert) as reader:
                try:
                    for batch in reader:
                        yield pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
                except READ_ERRORS as exc:
                    raise self._error(index, exc) from exc

    def _open(self, index: int, convert: pacsv.ConvertOptions) -> pacsv.CSVStreamingReader:
        options = pacsv.ReadOptions(block_size=_CSV_BLOCK)
        try:
            return pacsv.open_csv(self._files[index], read_options=options, convert_options=convert)
        except READ_ERRORS as exc:
            raise self._error(index, exc) from exc

    def _error(self, index: int, exc: Exception) -> BatchInputError:
        message, header = str(exc), self._headers[index]  # pyarrow numbers a bad column: name it
        found = re.match(r"In CSV column #(\d+): (.*)", message, re.DOTALL)
        if found and int(found[1]) < len(header):
            message = f"column {header[int(found[1])]!r}: {found[2]}"
        return BatchInputError(f"cannot read {self._names[index]} as CSV: {message}")


def _csv_header(path: Path, name: str) -> list[str]:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as packed:
                return next(csv.reader(packed), [])
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BatchInputError(f"cannot read {name} as CSV: {exc}") from exc

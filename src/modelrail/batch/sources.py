"""Where a batch job's rows come from: Parquet or CSV files (local, or in object storage), or a
SQL query, as Arrow batches.

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
import gzip
import io
import os
import posixpath
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import blake3
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelrail.batch.input_errors import READ_ERRORS, missing_column
from modelrail.batch.input_files import (
    REMOTE_READ,
    InputFile,
    find_files,
    kind_of,
    shown_path,
)
from modelrail.batch.parquet_read import read_columns
from modelrail.batch.rebatching import check_batching, drop_rows, rebatch
from modelrail.batch.spec import JobSpec
from modelrail.errors import BatchInputError

_HASH_CHUNK = 1 << 20
_CSV_BLOCK = 4 << 20  # bytes of text per CSV block
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
    files = find_files(spec.inputs)
    kinds = {kind_of(file.name): file for file in files}
    if len(kinds) > 1:
        raise BatchInputError(
            f"the inputs mix Parquet ({kinds['parquet'].shown}) and CSV "
            f"({kinds['csv'].shown}) files: a job reads one format"
        )
    return (_ParquetSource if "parquet" in kinds else _CsvSource)(files, wanted, types)


# -- finding files, shaping batches ------------------------------------------------------


def _size(count: float) -> str:
    for unit in ("kB", "MB", "GB"):
        count /= 1000
        if count < 1000 or unit == "GB":
            return f"{count:.1f} {unit}"
    raise AssertionError("unreachable")


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
        self, files: list[InputFile], columns: list[str] | None, types: dict[str, pa.DataType]
    ) -> None:
        self.total_rows: int | None = None
        self._files, self._names = files, [file.shown for file in files]
        self._sizes = [file.size for file in files]
        base, self._relative = _common_folder(files)
        size = _size(sum(self._sizes))
        self.description = (
            f"{len(files)} {self.kind} files in {base} ({size})"
            if len(files) > 1
            else f"{self.kind} file {self._names[0]} ({size})"
        )
        self.schema = self._check(columns, types)
        self._stop = threading.Event()
        self._digest: str | None = None
        self._hash_error: Exception | None = None
        self._hasher = threading.Thread(target=self._hash, name="modelrail-fingerprint")
        self._hasher.daemon = True
        self._hasher.start()

    @property
    def files(self) -> tuple[Path, ...]:
        """The input files in reading order (the Spark engine hands them to Spark)."""
        remote = next((file for file in self._files if not file.local), None)
        if remote is not None:
            raise BatchInputError(
                f"the spark {{engine}} reads local or shared paths, not {remote.shown}: "
                "score object-store inputs with the local engine",
                params=("engine",),
            )
        return tuple(Path(file.path) for file in self._files)

    def _check(self, columns: list[str] | None, types: dict[str, pa.DataType]) -> pa.Schema:
        raise NotImplementedError

    def _named(self) -> Iterator[tuple[InputFile, str]]:
        return zip(self._files, self._names, strict=True)

    def _hash(self) -> None:
        digest, buffer = blake3.blake3(), bytearray(_HASH_CHUNK)
        view = memoryview(buffer)
        try:
            for relative, size, file in zip(self._relative, self._sizes, self._files, strict=True):
                name = relative.encode()
                digest.update(len(name).to_bytes(8, "big") + name + size.to_bytes(8, "big"))
                with file.open_stream() as handle:
                    while count := handle.readinto(buffer):
                        if self._stop.is_set():
                            return
                        digest.update(view[:count])  # releases the GIL: overlaps scoring
            self._digest = digest.hexdigest()
        except (OSError, pa.ArrowException) as exc:
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
                self._metadata.append(pq.read_metadata(path.open_random()))
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
            file = self._files[index]
            source = file.path if file.local else _csv_stream(file)
            return pacsv.open_csv(source, read_options=options, convert_options=convert)
        except READ_ERRORS as exc:
            raise self._error(index, exc) from exc

    def _error(self, index: int, exc: Exception) -> BatchInputError:
        message, header = str(exc), self._headers[index]  # pyarrow numbers a bad column: name it
        found = re.match(r"In CSV column #(\d+): (.*)", message, re.DOTALL)
        if found and int(found[1]) < len(header):
            message = f"column {header[int(found[1])]!r}: {found[2]}"
        return BatchInputError(f"cannot read {self._names[index]} as CSV: {message}")


def _csv_header(file: InputFile, name: str) -> list[str]:
    try:
        with file.open_stream() as raw:
            stream: Any = io.BufferedReader(raw)
            if file.name.lower().endswith(".gz"):
                stream = gzip.GzipFile(fileobj=stream)
            with io.TextIOWrapper(stream, encoding="utf-8-sig", newline="") as text:
                return next(csv.reader(text), [])
    except (OSError, UnicodeDecodeError, csv.Error, pa.ArrowException) as exc:
        raise BatchInputError(f"cannot read {name} as CSV: {exc}") from exc


def _csv_stream(file: InputFile) -> Any:
    """An object-store CSV file as a stream, unpacked as pyarrow unpacks a local one."""
    compression = "gzip" if file.name.lower().endswith(".gz") else None
    return file.filesystem.open_input_stream(
        file.path, compression=compression, buffer_size=REMOTE_READ
    )


def _common_folder(files: list[InputFile]) -> tuple[str, list[str]]:
    """The folder the files share, as shown, and each file's path relative to it (which the
    fingerprint hashes, so the same files score to the same fingerprint wherever they are)."""
    if all(file.local for file in files):
        base = Path(os.path.commonpath([Path(file.path).parent for file in files]))
        relative = [Path(file.path).relative_to(base).as_posix() for file in files]
        return shown_path(base), relative
    folder = posixpath.commonpath(
        [posixpath.dirname(file.shown.split("://", 1)[1]) for file in files]
    )
    prefix = files[0].shown.split("://", 1)[0] + "://"
    relative = [posixpath.relpath(file.shown.split("://", 1)[1], folder) for file in files]
    return prefix + folder, relative

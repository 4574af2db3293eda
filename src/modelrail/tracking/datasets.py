"""Content fingerprints of tabular datasets, used to version training, validation and test data.

The fingerprint depends only on the logical table: column names, canonical column types, row
order and every value. It does not depend on the container (DataFrame, Arrow, CSV, Parquet), on
how rows are split into chunks, row groups or files, or on the physical type width (int32 and
int64 agree). Every column is hashed with its own streaming sha256 hashers over a canonical byte
form, fed batch by batch, so no hash input ever depends on where a batch boundary falls:

* validity: one byte per row (1 = present, 0 = null; NaN counts as null so pandas and Arrow agree)
* fixed-width values (int64, float64, bool as one byte, temporal types as int64/int32 counts)
  as little-endian bytes, with missing slots zeroed
* variable-width values (strings, binary): one hasher over lengths as int64, one over the bytes
* lists: lengths as int64 plus the flattened items as a child column; structs: one child per field

Column digests are combined with the canonical schema and the row count at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelrail.errors import DatasetReadError, InvalidInputError, UnsupportedDatasetError

__all__ = ["DatasetFingerprint", "fingerprint_dataset"]

_FORMAT = b"modelrail.dataset.v1"
_CSV_BLOCK_BYTES = 16 << 20
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_SUPPORTED = (
    "supported: pandas DataFrame or Series, 1-D or 2-D numpy array, pyarrow Table or "
    "RecordBatch, or a path to a .csv, .csv.gz, .parquet or .pq file or a folder of Parquet files"
)
# pandas names an unnamed index __index_level_N__ when it converts to Arrow or writes Parquet.
_PANDAS_UNNAMED_INDEX = re.compile(r"__index_level_\d+__")
_CSV_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error")
# Arrow infers CSV types from the first block only; a later value that does not fit widens the
# column one step along this ladder and the file is read again, so inference covers the whole file.
_CSV_LADDER = (pa.null(), pa.int64(), pa.float64(), pa.string(), pa.binary())
_FILE_ERRORS = (pa.ArrowException, OSError, ValueError)
_MEMORY_ERRORS = (pa.ArrowException, ValueError, TypeError)


@dataclass(frozen=True)
class DatasetFingerprint:
    """Identity of a dataset's content; ``sha256`` is what versions compare by."""

    sha256: str
    schema: tuple[tuple[str, str], ...]
    schema_sha256: str
    rows: int
    source: str


@dataclass(frozen=True)
class _Plan:
    """How one Arrow type maps to its canonical type and byte form."""

    name: str
    kind: str  # "fixed" | "bytes" | "list" | "struct" | "null" | "repr"
    target: Any = None  # the canonical Arrow type values are cast to first
    physical: Any = None  # "fixed" only: the numeric type whose bytes are hashed
    children: tuple[tuple[str, _Plan], ...] = ()


def _type_is(t: Any, predicate: str) -> bool:
    # Some predicates (string_view, binary_view) only exist in newer pyarrow releases.
    check = getattr(pa.types, predicate, None)
    return bool(check(t)) if check is not None else False


def _plan(t: Any) -> _Plan:
    types = pa.types
    if types.is_dictionary(t):
        return _plan(t.value_type)
    if types.is_integer(t):
        return _Plan("int64", "fixed", pa.int64(), pa.int64())
    if types.is_floating(t):
        return _Plan("float64", "fixed", pa.float64(), pa.float64())
    if types.is_boolean(t):
        return _Plan("bool", "fixed", pa.bool_(), pa.int8())
    if types.is_timestamp(t):
        name = "timestamp[ns]" if t.tz is None else f"timestamp[ns, tz={t.tz}]"
        return _Plan(name, "fixed", pa.timestamp("ns", t.tz), pa.int64())
    if types.is_date(t):
        return _Plan("date32", "fixed", pa.date32(), pa.int32())
    if types.is_time(t):
        return _Plan("time64[ns]", "fixed", pa.time64("ns"), pa.int64())
    if types.is_duration(t):
        return _Plan("duration[ns]", "fixed", pa.duration("ns"), pa.int64())
    if types.is_string(t) or types.is_large_string(t) or _type_is(t, "is_string_view"):
        return _Plan("string", "bytes", pa.large_string())
    if (
        types.is_binary(t)
        or types.is_large_binary(t)
        or types.is_fixed_size_binary(t)
        or _type_is(t, "is_binary_view")
    ):
        return _Plan("binary", "bytes", pa.large_binary())
    if types.is_decimal(t):
        return _Plan(f"decimal({t.precision}, {t.scale})", "bytes", pa.large_string())
    if types.is_null(t):
        return _Plan("null", "null")
    if types.is_list(t) or types.is_large_list(t) or types.is_fixed_size_list(t):
        item = _plan(t.value_type)
        return _Plan(f"list<{item.name}>", "list", children=(("item", item),))
    if types.is_struct(t):
        fields = tuple((t.field(i).name, _plan(t.field(i).type)) for i in range(t.num_fields))
        inner = ", ".join(f"{name}: {plan.name}" for name, plan in fields)
        return _Plan(f"struct<{inner}>", "struct", children=fields)
    # Maps, unions, intervals and extension types have no cheap canonical layout; the
    # per-value repr is slow but exact and still independent of chunking.
    return _Plan(str(t), "repr", pa.large_string())


def _little_endian(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return values.astype(values.dtype.newbyteorder("<"), copy=False)


class _ColumnHasher:
    """Streaming hashers for one column; fed one Arrow array (a batch's slice) at a time."""

    def __init__(self, plan: _Plan) -> None:
        self._plan = plan
        self._validity = hashlib.sha256()
        self._values = hashlib.sha256()
        self._lengths = hashlib.sha256()
        self._children = [_ColumnHasher(child) for _, child in plan.children]

    def update(self, arr: Any) -> None:
        plan = self._plan
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if plan.kind == "repr":
            texts = [None if value is None else repr(value) for value in arr.to_pylist()]
            arr = pa.array(texts, pa.large_string())
        elif plan.target is not None and arr.type != plan.target:
            # Integers are cast unchecked so uint64 above 2**63 wraps instead of failing.
            arr = arr.cast(plan.target, safe=plan.name != "int64")
        if plan.name == "float64":
            missing = pc.is_null(arr, nan_is_null=True)
            any_missing = missing.true_count > 0
        else:
            any_missing = arr.null_count > 0
            missing = pc.is_null(arr) if any_missing else None
        if any_missing:
            self._validity.update(pc.invert(missing).cast(pa.uint8()).to_numpy())
        else:
            self._validity.update(b"\x01" * len(arr))

        if plan.kind == "fixed":
            values = arr if arr.type == plan.physical else arr.cast(plan.physical)
            if any_missing:
                # Null slots hold arbitrary bytes in Arrow; zero them so only validity counts.
                values = pc.if_else(missing, pa.scalar(0, plan.physical), values)
            self._values.update(_little_endian(values.to_numpy()))
        elif plan.kind in ("bytes", "repr"):
            self._update_bytes(arr, any_missing)
        elif plan.kind == "list":
            lengths = pc.fill_null(pc.list_value_length(arr), 0).cast(pa.int64())
            self._lengths.update(_little_endian(lengths.to_numpy()))
            self._children[0].update(arr.flatten())
        elif plan.kind == "struct":
            # StructArray.flatten folds the struct's own nulls into each child.
            for child, values in zip(self._children, arr.flatten(), strict=True):
                child.update(values)

    def _update_bytes(self, arr: Any, any_missing: bool) -> None:
        if any_missing:
            empty = "" if pa.types.is_large_string(arr.type) else b""
            arr = pc.fill_null(arr, pa.scalar(empty, arr.type))
        rows = len(arr)
        if rows == 0:
            return
        # Read lengths and bytes straight from the Arrow buffers: no per-row Python work.
        _, offsets_buffer, data = arr.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype="<i8")[arr.offset : arr.offset + rows + 1]
        self._lengths.update(_little_endian(np.diff(offsets)))
        if data is not None:
            self._values.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])

    def digest(self) -> bytes:
        parts = [self._validity.digest(), self._values.digest(), self._lengths.digest()]
        parts.extend(child.digest() for child in self._children)
        return hashlib.sha256(b"".join(parts)).digest()


class _Fingerprinter:
    """Accumulates column hashes across batches (and files) sharing one canonical schema."""

    def __init__(self, schema: Any) -> None:
        positions = _kept_positions(schema)
        plans = [_plan(schema.field(i).type) for i in positions]
        self.schema = tuple(
            (str(schema.field(i).name), plan.name) for i, plan in zip(positions, plans, strict=True)
        )
        self._columns = [_ColumnHasher(plan) for plan in plans]

    def positions(self, schema: Any) -> list[int] | None:
        """Column positions to hash in batches of ``schema``; None if its shape differs."""
        positions = _kept_positions(schema)
        canonical = tuple(
            (str(schema.field(i).name), _plan(schema.field(i).type).name) for i in positions
        )
        return positions if canonical == self.schema else None

    def update(self, batch: Any, positions: list[int]) -> None:
        for column, position in zip(self._columns, positions, strict=True):
            column.update(batch.column(position))

    def finish(self, rows: int, source: str) -> DatasetFingerprint:
        shape = json.dumps([list(column) for column in self.schema], separators=(",", ":"))
        schema_sha256 = hashlib.sha256(_FORMAT + b"\nschema\n" + shape.encode()).hexdigest()
        content = hashlib.sha256(_FORMAT + b"\ndata\n")
        content.update(bytes.fromhex(schema_sha256))
        content.update(rows.to_bytes(8, "little"))
        for column in self._columns:
            content.update(column.digest())
        return DatasetFingerprint(content.hexdigest(), self.schema, schema_sha256, rows, source)


def _kept_positions(schema: Any) -> list[int]:
    # An unnamed pandas index is bookkeeping (row positions left over from filtering or a
    # train/test split), not data; dropping it makes a frame and its to_parquet() file agree.
    return [i for i, name in enumerate(schema.names) if not _PANDAS_UNNAMED_INDEX.fullmatch(name)]


def fingerprint_dataset(data: object, *, batch_rows: int = 65_536) -> DatasetFingerprint:
    """Fingerprint a table's content, independent of its container and chunking.

    ``data`` may be a pandas DataFrame or Series (a Series is one column named after it, "0"
    if unnamed), a 1-D numpy array (one column "0") or 2-D array (columns "0", "1", ...), a
    pyarrow Table or RecordBatch, or a path to a ``.csv`` / ``.csv.gz`` file, a ``.parquet`` /
    ``.pq`` file or a folder of Parquet files. A folder's files are read in sorted relative-path
    order; files and folders whose names start with "." or "_" (``_SUCCESS``, ``.crc``) are
    skipped, as pyarrow.dataset does, and every file must have the same canonical schema.

    pandas index: an unnamed index (the default RangeIndex, or the positions left over after
    filtering or ``train_test_split``) is not data and is ignored. A named index is data and
    becomes trailing columns, where pandas' own Parquet writer puts it, so ``df`` and the file
    written by ``df.to_parquet()`` agree. Call ``reset_index()`` first to hash it as leading
    columns.

    CSV: types are inferred by Arrow; a column that stops fitting its inferred type further
    into the file is widened (null -> int64 -> float64 -> string -> binary) and the file read
    again. Empty fields are null, as in ``pandas.read_csv``.

    Files are streamed in batches of at most ``batch_rows`` rows (CSV in 16 MB blocks), so
    memory stays bounded whatever the file size; ``batch_rows`` never changes the result.

    Raises UnsupportedDatasetError for any other object or file type, and DatasetReadError,
    naming the file, when a file is missing, unreadable or corrupt.
    """
    if batch_rows < 1:
        raise InvalidInputError(f"batch_rows must be at least 1, got {batch_rows}")
    if isinstance(data, str | os.PathLike):
        return _fingerprint_path(Path(os.fsdecode(data)), batch_rows)
    source = f"{type(data).__module__.split('.')[0]}.{type(data).__name__}"
    try:
        table, rows = _to_arrow(data)
    except _MEMORY_ERRORS as exc:
        raise UnsupportedDatasetError(f"cannot fingerprint this {source}: {exc}") from exc
    if table is None:
        raise UnsupportedDatasetError(
            f"cannot fingerprint an object of type {source}; {_SUPPORTED}"
        )
    try:
        fingerprinter = _Fingerprinter(table.schema)
        positions = list(range(table.num_columns))
        for batch in table.to_batches(max_chunksize=batch_rows):
            fingerprinter.update(batch, positions)
    except _MEMORY_ERRORS as exc:
        raise UnsupportedDatasetError(f"cannot fingerprint this {source}: {exc}") from exc
    return fingerprinter.finish(rows, source)


def _to_arrow(data: object) -> tuple[Any, int]:
    """The object as an Arrow table plus its row count, or (None, 0) if not supported."""
    if isinstance(data, pd.Series):
        data = data.to_frame(name="0" if data.name is None else str(data.name))
    if isinstance(data, pd.DataFrame):
        named_index = any(name is not None for name in data.index.names)
        # An unnamed index is dropped (see the docstring); a named one is kept and pyarrow
        # appends it after the columns, turning any unnamed levels into __index_level_N__.
        table = pa.Table.from_pandas(data, preserve_index=named_index)
        # A frame without columns still has rows, which Arrow's conversion loses.
        return table, len(data)
    if isinstance(data, np.ndarray):
        if data.ndim == 1:
            return pa.table({"0": data}), len(data)
        if data.ndim == 2:
            return pa.table({str(i): data[:, i] for i in range(data.shape[1])}), data.shape[0]
        raise UnsupportedDatasetError(
            f"cannot fingerprint a {data.ndim}-D numpy.ndarray: only 1-D and 2-D arrays are tables"
        )
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return data, data.num_rows
    return None, 0


def _fingerprint_path(path: Path, batch_rows: int) -> DatasetFingerprint:
    path = path.expanduser().resolve()
    if not path.exists():
        raise DatasetReadError(f"cannot read dataset {path}: no such file or directory")
    name = path.name.lower()
    if path.is_dir():
        files = _parquet_files(path)
    elif name.endswith(_CSV_SUFFIXES):
        return _fingerprint_csv(path)
    elif name.endswith(_PARQUET_SUFFIXES):
        files = [path]
    else:
        raise UnsupportedDatasetError(
            f"cannot fingerprint {path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"{_SUPPORTED}"
        )
    return _fingerprint_parquet(files, str(path), batch_rows)


def _parquet_files(folder: Path) -> list[Path]:
    files = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        hidden = any(part.startswith((".", "_")) for part in relative.parts)
        if not hidden and path.name.lower().endswith(_PARQUET_SUFFIXES) and path.is_file():
            files.append(path)
    if not files:
        raise DatasetReadError(f"cannot read dataset folder {folder}: it holds no Parquet files")
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def _fingerprint_parquet(files: list[Path], source: str, batch_rows: int) -> DatasetFingerprint:
    fingerprinter: _Fingerprinter | None = None
    rows = 0
    for path in files:
        try:
            with pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False) as parquet:
                schema = parquet.schema_arrow
                if fingerprinter is None:
                    fingerprinter = _Fingerprinter(schema)
                positions = fingerprinter.positions(schema)
                if positions is None:
                    raise DatasetReadError(
                        f"cannot read dataset file {path}: its columns "
                        f"{list(_Fingerprinter(schema).schema)} differ from those of "
                        f"{files[0]}: {list(fingerprinter.schema)}"
                    )
                # The footer's count also covers files with rows but no columns.
                rows += parquet.metadata.num_rows
                for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=False):
                    fingerprinter.update(batch, positions)
        except _FILE_ERRORS as exc:
            raise DatasetReadError(f"cannot read dataset file {path}: {exc}") from exc
    assert fingerprinter is not None  # _parquet_files never returns an empty list
    return fingerprinter.finish(rows, source)


def _fingerprint_csv(path: Path) -> DatasetFingerprint:
    read_options = pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
    column_types: dict[str, Any] = {}
    while True:
        convert_options = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True)
        try:
            with pacsv.open_csv(
                str(path), read_options=read_options, convert_options=convert_options
            ) as reader:
                fingerprinter = _Fingerprinter(reader.schema)
                positions = list(range(len(reader.schema)))
                rows = 0
                try:
                    for batch in reader:
                        fingerprinter.update(batch, positions)
                        rows += batch.num_rows
                except pa.ArrowInvalid as exc:
                    wider = _widened_column(reader.schema, str(exc))
                    if wider is None:
                        raise
                    column_types[wider[0]] = wider[1]
                    continue
        except _FILE_ERRORS as exc:
            raise DatasetReadError(f"cannot read dataset file {path}: {exc}") from exc
        return fingerprinter.finish(rows, str(path))


def _widened_column(schema: Any, error: str) -> tuple[str, Any] | None:
    """The column a CSV conversion error names and its next wider type, if there is one."""
    match = _CSV_CONVERSION_ERROR.search(error)
    if match is None or int(match[1]) >= len(schema):
        return None
    field = schema.field(int(match[1]))
    if field.type == _CSV_LADDER[-1]:
        return None
    # Types off the ladder (bool, dates, timestamps) widen to string.
    step = _CSV_LADDER.index(field.type) if field.type in _CSV_LADDER else 2
    return field.name, _CSV_LADDER[step + 1]

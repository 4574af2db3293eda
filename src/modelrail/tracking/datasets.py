"""Content fingerprints of tabular datasets, used to version training, validation and test data.

The fingerprint depends only on column names, canonical column types, row order and values,
not on the container (DataFrame, Arrow, CSV, Parquet), the split into chunks, row groups or
files, or the type width (int32 and int64 agree). Each column has its own streaming sha256
hashers over a canonical byte form, fed batch by batch, so no hash input depends on where a
batch boundary falls:

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from modelrail.errors import DatasetReadError, InvalidInputError, UnsupportedDatasetError


class BatchWatcher(Protocol):
    """Sees the batches a fingerprint is computed from (a profile is built from them, in the
    same pass): the schema once, then every batch."""

    def start(self, schema: Any) -> None: ...

    def update(self, batch: Any) -> None: ...


__all__ = [
    "DatasetFingerprint",
    "dataset_batches",
    "fingerprint_dataset",
]


_FORMAT = b"modelrail.dataset.v1"
# Arrow's streaming CSV reader reads up to 32 blocks ahead, so memory grows with 32 x block
# size: 16 MB blocks cost ~650 MB of RSS on a 1 GB file, 1 MB blocks ~70 MB at the same speed.
_CSV_BLOCK_BYTES = 1 << 20
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


# (type test, canonical name, canonical type, type whose little-endian bytes are hashed)
_FIXED_WIDTH = (
    (pa.types.is_integer, "int64", pa.int64(), pa.int64()),
    (pa.types.is_floating, "float64", pa.float64(), pa.float64()),
    (pa.types.is_boolean, "bool", pa.bool_(), pa.int8()),
    (pa.types.is_date, "date32", pa.date32(), pa.int32()),
    (pa.types.is_time, "time64[ns]", pa.time64("ns"), pa.int64()),
    (pa.types.is_duration, "duration[ns]", pa.duration("ns"), pa.int64()),
)


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


def _plan(t: Any) -> _Plan:
    types = pa.types
    if types.is_dictionary(t):
        return _plan(t.value_type)
    if types.is_timestamp(t):
        name = "timestamp[ns]" if t.tz is None else f"timestamp[ns, tz={t.tz}]"
        return _Plan(name, "fixed", pa.timestamp("ns", t.tz), pa.int64())
    for matches, name, target, physical in _FIXED_WIDTH:
        if matches(t):
            return _Plan(name, "fixed", target, physical)
    if str(t) in ("string", "large_string", "string_view"):
        return _Plan("string", "bytes", pa.large_string())
    if types.is_fixed_size_binary(t) or str(t) in ("binary", "large_binary", "binary_view"):
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


def _little_endian(values: np.ndarray[Any, Any]) -> memoryview:
    return values.astype(values.dtype.newbyteorder("<"), copy=False).data


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
        # NaN counts as missing so pandas' NaN and Arrow's null agree.
        missing = pc.is_null(arr, nan_is_null=True)
        any_missing = missing.true_count > 0
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
        _, plans, self.schema = _shape(schema)
        self._columns = [_ColumnHasher(plan) for plan in plans]

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


def _shape(schema: Any) -> tuple[list[int], list[_Plan], tuple[tuple[str, str], ...]]:
    """Positions of the columns to hash, their plans, and the canonical schema."""
    # An unnamed pandas index is bookkeeping (row positions left over from filtering or a
    # train/test split), not data; dropping it makes a frame and its to_parquet() file agree.
    names = schema.names
    positions = [i for i, name in enumerate(names) if not _PANDAS_UNNAMED_INDEX.fullmatch(name)]
    plans = [_plan(schema.field(i).type) for i in positions]
    canonical = tuple((str(names[i]), plan.name) for i, plan in zip(positions, plans, strict=True))
    return positions, plans, canonical


def fingerprint_dataset(
    data: object, *, batch_rows: int = 65_536, watcher: BatchWatcher | None = None
) -> DatasetFingerprint:
    """Fingerprint a table's content, independent of its container and chunking.

    ``data``: a pandas DataFrame or Series (one column named after it, "0" if unnamed), a 1-D
    (column "0") or 2-D (columns "0", "1", ...) numpy array, a pyarrow Table or RecordBatch, or
    a path to a .csv / .csv.gz file, a .parquet / .pq file or a folder of Parquet files. Folder
    files are read in sorted relative-path order, skipping names that start with "." or "_"
    (``_SUCCESS``, ``.crc``) as pyarrow.dataset does; all must share one canonical schema.

    pandas index: an unnamed index (the default RangeIndex, or positions left over after
    filtering or ``train_test_split``) is not data and is ignored. A named index is data and
    becomes trailing columns, where pandas' own Parquet writer puts it, so ``df`` and
    ``df.to_parquet()``'s file agree; ``reset_index()`` first to hash it as leading columns.

    CSV: Arrow infers the types; a column that stops fitting its type later in the file is
    widened (null -> int64 -> float64 -> string -> binary, coarse timestamps -> ns, others ->
    string) and the file read again. Empty fields are null, as in ``pandas.read_csv``.

    Files are streamed (Parquet in ``batch_rows`` batches, CSV in 1 MB blocks) so memory stays
    bounded; ``batch_rows`` never changes the result. Raises UnsupportedDatasetError for other
    objects and file types, DatasetReadError (naming the file) for missing or corrupt files.
    ``watcher`` sees the same batches (``monitoring.dataset_profiles`` profiles them).
    """
    return _fingerprint(data, batch_rows, watcher)


def _fingerprint(
    data: object, batch_rows: int, profiling: BatchWatcher | None
) -> DatasetFingerprint:
    if batch_rows < 1:
        raise InvalidInputError(f"batch_rows must be at least 1, got {batch_rows}")
    if isinstance(data, str | os.PathLike):
        return _fingerprint_path(Path(os.fsdecode(data)), batch_rows, profiling)
    kind = type(data)
    package = kind.__module__.split(".")[0]
    source = kind.__qualname__ if package == "builtins" else f"{package}.{kind.__qualname__}"
    try:
        table, rows = _to_arrow(data, source)
        fingerprinter = _Fingerprinter(table.schema)
        positions = _shape(table.schema)[0]
        if profiling is not None:
            profiling.start(table.schema)
        for batch in table.to_batches(max_chunksize=batch_rows):
            fingerprinter.update(batch, positions)
            if profiling is not None:
                profiling.update(batch)
    except _MEMORY_ERRORS as exc:
        raise UnsupportedDatasetError(f"cannot fingerprint this {source}: {exc}") from exc
    return fingerprinter.finish(rows, source)


def dataset_batches(
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str],
    column_types: Mapping[str, Any] | None = None,
    batch_rows: int = 65_536,
) -> Iterator[Any]:
    """The ``columns`` of a dataset file or Parquet folder (as ``fingerprint_dataset`` reads
    them), streamed as Arrow record batches; a CSV's ``column_types`` are given, not
    inferred. Raises DatasetReadError naming the file, as fingerprinting does."""
    path = Path(os.fsdecode(path)).expanduser().resolve()
    if not path.exists():
        raise DatasetReadError(f"cannot read dataset {path}: no such file or directory")
    name = path.name.lower()
    try:
        if name.endswith(_CSV_SUFFIXES):
            read = pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
            convert = pacsv.ConvertOptions(
                column_types=dict(column_types or {}),
                include_columns=list(columns),
                strings_can_be_null=True,
            )
            with pacsv.open_csv(str(path), read_options=read, convert_options=convert) as reader:
                yield from reader
            return
        files = _parquet_files(path) if path.is_dir() else [path]
        for file in files:
            with pq.ParquetFile(file, buffer_size=1 << 20, pre_buffer=False) as parquet:
                yield from parquet.iter_batches(batch_size=batch_rows, columns=list(columns))
    except _FILE_ERRORS as exc:
        raise DatasetReadError(f"cannot read dataset {path}: {exc}") from exc


def _to_arrow(data: object, source: str) -> tuple[Any, int]:
    """The object as an Arrow table plus its row count."""
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
    raise UnsupportedDatasetError(f"cannot fingerprint an object of type {source}; {_SUPPORTED}")


def _fingerprint_path(
    path: Path, batch_rows: int, profiling: BatchWatcher | None
) -> DatasetFingerprint:
    path = path.expanduser().resolve()
    if not path.exists():
        raise DatasetReadError(f"cannot read dataset {path}: no such file or directory")
    name = path.name.lower()
    if path.is_dir():
        files = _parquet_files(path)
    elif name.endswith(_CSV_SUFFIXES):
        return _fingerprint_csv(path, profiling)
    elif name.endswith(_PARQUET_SUFFIXES):
        files = [path]
    else:
        raise UnsupportedDatasetError(
            f"cannot fingerprint {path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"{_SUPPORTED}"
        )
    return _fingerprint_parquet(files, str(path), batch_rows, profiling)


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


def _fingerprint_parquet(
    files: list[Path], source: str, batch_rows: int, profiling: BatchWatcher | None
) -> DatasetFingerprint:
    fingerprinter: _Fingerprinter | None = None
    rows = 0
    for path in files:
        try:
            with pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False) as parquet:
                schema = parquet.schema_arrow
                if fingerprinter is None:
                    fingerprinter = _Fingerprinter(schema)
                    if profiling is not None:
                        profiling.start(schema)
                positions, _, canonical = _shape(schema)
                if canonical != fingerprinter.schema:
                    raise DatasetReadError(
                        f"cannot read dataset file {path}: its columns {list(canonical)} differ "
                        f"from those of {files[0]}: {list(fingerprinter.schema)}"
                    )
                # The footer's count also covers files with rows but no columns.
                rows += parquet.metadata.num_rows
                for batch in parquet.iter_batches(batch_size=batch_rows):
                    fingerprinter.update(batch, positions)
                    if profiling is not None:
                        profiling.update(batch)
        except _FILE_ERRORS as exc:
            raise DatasetReadError(f"cannot read dataset file {path}: {exc}") from exc
    assert fingerprinter is not None  # _parquet_files never returns an empty list
    return fingerprinter.finish(rows, source)


def _fingerprint_csv(path: Path, profiling: BatchWatcher | None) -> DatasetFingerprint:
    read_options = pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
    column_types: dict[str, Any] = {}
    while True:
        convert_options = pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=True)
        try:
            with pacsv.open_csv(
                str(path), read_options=read_options, convert_options=convert_options
            ) as reader:
                fingerprinter = _Fingerprinter(reader.schema)
                positions = _shape(reader.schema)[0]
                if profiling is not None:  # (again, when a widened column restarts the read)
                    profiling.start(reader.schema)
                rows = 0
                try:
                    for batch in reader:
                        fingerprinter.update(batch, positions)
                        if profiling is not None:
                            profiling.update(batch)
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
    if pa.types.is_timestamp(field.type) and field.type.unit != "ns":
        return field.name, pa.timestamp("ns", field.type.tz)
    if field.type == _CSV_LADDER[-1]:
        return None
    # Types off the ladder (bool, dates, times, timestamps) widen to string.
    step = _CSV_LADDER.index(field.type) if field.type in _CSV_LADDER else 2
    return field.name, _CSV_LADDER[step + 1]

"""PostgreSQL's binary COPY format built with numpy, for batches of fixed-width values.

A binary COPY row is a field count followed by (length, value) pairs in network byte
order. When every column has a fixed width (integers, floats, booleans, timestamps, and
the run's constant texts), all rows have the same layout, so a whole batch is one numpy
structured array: no per-row Python, and no text for the server to parse.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelrail.batch import arrays

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
_EPOCH_2000_US = 946_684_800_000_000
_FIXED = {
    "bigint": ">i8",
    "integer": ">i4",
    "smallint": ">i2",
    "double precision": ">f8",
    "real": ">f4",
    "boolean": "u1",
    "timestamp with time zone": ">i8",
    "timestamp without time zone": ">i8",
}


def binary_payload(
    batch: pa.RecordBatch, pg_types: list[str], constants: Mapping[str, str] | None = None
) -> memoryview | None:
    """The batch as one binary COPY data block, or None when a column does not fit
    (variable-width text, nulls, a type not listed), for the caller to fall back to CSV.
    ``constants`` names text columns known to hold one value on every row (the run's
    stamp), which then need no check."""
    layout: list[tuple[str, str]] = [("count", ">i2")]
    values: list[tuple[str, Any, int]] = []
    known = constants or {}
    for j, (column, pg_type) in enumerate(zip(batch.columns, pg_types, strict=True)):
        if column.null_count:
            return None
        name = batch.schema.names[j]
        if name in known and known[name] and pg_type in ("text", "character varying"):
            encoded = known[name].encode()
            converted: tuple[Any, str] | None = (encoded, f"S{len(encoded)}")
        else:
            converted = _fixed(column, pg_type)
        if converted is None:
            return None
        array, dtype = converted
        width = np.dtype(dtype).itemsize
        layout += [(f"len{j}", ">i4"), (f"val{j}", dtype)]
        values.append((f"val{j}", array, width))
    rows = np.empty(batch.num_rows, dtype=np.dtype(layout))
    rows["count"] = batch.num_columns
    for name, array, width in values:
        rows["len" + name[3:]] = width
        rows[name] = array  # a constant's bytes are broadcast to every row
    return rows.view(np.uint8).data


def _fixed(column: pa.Array, pg_type: str) -> tuple[Any, str] | None:
    kind = column.type
    if pg_type in ("text", "character varying") and (
        pa.types.is_string(kind) or pa.types.is_large_string(kind)
    ):
        return _constant_text(column)
    dtype = _FIXED.get(pg_type)
    if dtype is None:
        return None
    if pa.types.is_timestamp(kind):
        if not pg_type.startswith("timestamp"):
            return None
        micros = pc.cast(column, pa.timestamp("us", tz=kind.tz)).cast(pa.int64())
        return arrays.to_numpy(micros) - _EPOCH_2000_US, dtype
    if pa.types.is_boolean(kind):
        return (arrays.to_numpy(column) if pg_type == "boolean" else None), dtype
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if pg_type == "boolean" or pg_type.startswith("timestamp"):
            return None
        if pa.types.is_floating(kind) and not dtype.startswith(">f"):
            return None
        return arrays.to_numpy(column), dtype
    return None


def _constant_text(column: pa.Array) -> tuple[Any, str] | None:
    """A text column with one value in every row (model name, run id) is fixed-width too."""
    if len(column) == 0:
        return np.empty(0, dtype="S1"), "S1"
    # (count_distinct, not an equality with the first value: that would build a pa.scalar,
    # which imports pandas)
    if column.null_count or pc.count_distinct(column).as_py() != 1:
        return None
    first = column[0].as_py()
    encoded = first.encode()
    if not encoded:
        return None
    return np.full(len(column), encoded, dtype=f"S{len(encoded)}"), f"S{len(encoded)}"

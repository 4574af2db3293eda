"""Columns between Arrow and numpy, built from and read out of their buffers.

pyarrow imports pandas the first time ``pa.array``, ``pa.scalar`` or ``Array.to_numpy``
runs (to tell whether it was handed pandas objects): about 0.25 s and 50 MB that a run
scoring with a compiled model has no other use for. The batch path therefore moves its
fixed-width columns through these helpers, which touch no pandas hook.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

NumpyArray = np.ndarray[Any, Any]
_OFFSET_LIMIT = 2**31 - 1  # pa.string() offsets are int32


@functools.lru_cache(maxsize=64)  # asked for every column of every batch
def numpy_dtype(arrow_type: pa.DataType) -> np.dtype[Any]:
    """The numpy dtype whose bytes match a fixed-width Arrow type's values buffer."""
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date64(arrow_type):
        return np.dtype(np.int64)
    if pa.types.is_date32(arrow_type):
        return np.dtype(np.int32)
    if pa.types.is_floating(arrow_type):
        return np.dtype(f"f{arrow_type.bit_width // 8}")
    if pa.types.is_signed_integer(arrow_type):
        return np.dtype(f"i{arrow_type.bit_width // 8}")
    if pa.types.is_unsigned_integer(arrow_type):
        return np.dtype(f"u{arrow_type.bit_width // 8}")
    raise TypeError(f"{arrow_type} has no fixed-width numpy equivalent")


def _bits(buffer: pa.Buffer | None, offset: int, length: int) -> NumpyArray:
    if buffer is None:
        return np.ones(length, dtype=bool)
    packed = np.frombuffer(buffer, dtype=np.uint8)
    return np.unpackbits(packed, bitorder="little", count=offset + length)[offset:].astype(bool)


def valid(array: pa.Array) -> NumpyArray:
    """True where the array holds a value, False where it holds null."""
    return _bits(array.buffers()[0] if array.null_count else None, array.offset, len(array))


def to_numpy(array: pa.Array | pa.ChunkedArray, *, nulls_as_nan: bool = False) -> NumpyArray:
    """The values of a boolean or fixed-width numeric array: a read-only view of its buffer
    where possible. Null slots hold whatever the buffer holds, or NaN with ``nulls_as_nan``
    (floating types only)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    length = len(array)
    if pa.types.is_boolean(array.type):
        return _bits(array.buffers()[1], array.offset, length)
    dtype = numpy_dtype(array.type)
    data = array.buffers()[1]
    if data is None or length == 0:
        return np.zeros(length, dtype=dtype)
    values = np.frombuffer(data, dtype=dtype, count=length, offset=array.offset * dtype.itemsize)
    if nulls_as_nan and array.null_count:
        values = values.copy()
        values[~valid(array)] = np.nan
    return values


def python_values(column: pa.Array) -> list[Any]:
    """The column as Python values. Numbers without nulls go through numpy's ``tolist``,
    several times faster than Arrow's ``to_pylist`` for the writers that need Python."""
    kind = column.type
    if column.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        values: list[Any] = to_numpy(column).tolist()
        return values
    return list(column.to_pylist())


def from_numpy(values: NumpyArray, arrow_type: pa.DataType) -> pa.Array:
    """An Arrow array (no nulls) over a numpy array's values."""
    length = len(values)
    if pa.types.is_boolean(arrow_type):
        bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
        return pa.Array.from_buffers(arrow_type, length, [None, pa.py_buffer(bits)])
    contiguous = np.ascontiguousarray(values, dtype=numpy_dtype(arrow_type))
    return pa.Array.from_buffers(arrow_type, length, [None, pa.py_buffer(contiguous)])


def strings(texts: Sequence[str]) -> pa.Array:
    """A ``pa.string()`` array of the given texts (no nulls)."""
    encoded = [text.encode() for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(item) for item in encoded], out=offsets[1:])
    _check_size(int(offsets[-1]))
    return _string_array(len(encoded), offsets, b"".join(encoded))


def repeated_string(text: str, rows: int) -> pa.Array:
    """``text`` on every one of ``rows`` rows, as a ``pa.string()`` array."""
    item = text.encode()
    _check_size(len(item) * rows)
    offsets = np.arange(rows + 1, dtype=np.int64) * len(item)
    return _string_array(rows, offsets, item * rows)


def repeated(value: int, arrow_type: pa.DataType, rows: int) -> pa.Array:
    """A fixed-width value (an integer, or a timestamp's integer count) on every row."""
    return from_numpy(np.full(rows, value, dtype=numpy_dtype(arrow_type)), arrow_type)


def _check_size(total: int) -> None:
    if total > _OFFSET_LIMIT:
        raise ValueError(f"{total:,} bytes of text do not fit one Arrow string array")


def _string_array(rows: int, offsets: NumpyArray, data: bytes) -> pa.Array:
    narrow = pa.py_buffer(offsets.astype(np.int32))
    return pa.Array.from_buffers(pa.string(), rows, [None, narrow, pa.py_buffer(data)])

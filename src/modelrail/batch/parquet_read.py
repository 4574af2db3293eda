"""Decoding a Parquet file's columns on two threads at once.

Decoding is the longest stage of a batch run. pyarrow decodes the columns of a batch one
after another; its own thread pool can decode them side by side, but it then holds every
column's pages at once and waits for the slowest column at every batch. Here the columns
are split in two halves of about the same compressed size and each half is streamed by its
own reader, the second on a thread of its own. Both readers cut the same row groups into
batches of the same length, so the batches they yield for the same rows line up; their
columns are handed on in the order asked (no copy), for the caller to make its batch of.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from modelrail.batch.stages import Stage

if TYPE_CHECKING:
    from modelrail.batch.input_files import InputFile

# Bytes read at a time per column: each column keeps one such buffer (1 MiB would hold
# 30 MB more for 31 columns, for no speed).
_BUFFER = 64 << 10


def read_columns(
    path: InputFile,
    metadata: Any,
    groups: list[int],
    columns: Sequence[str],
    rows: int,
    parallel: bool,
) -> Iterator[list[pa.Array]]:
    """``columns`` of row groups ``groups`` of the file, in that order, batch by batch of
    ``rows`` rows; decoded in two halves at once if ``parallel``."""
    # From an object store a row group's columns come in one request when read together;
    # halves would ask for each column apart.
    halves = _halves(metadata, groups, columns) if parallel and path.local else None
    if halves is None:
        for batch in _stream(path, metadata, groups, columns, rows):
            yield batch.columns
        return
    first, second = halves
    with Stage(_stream(path, metadata, groups, second, rows), "batch-reader-2", 1) as other:
        for left in _stream(path, metadata, groups, first, rows):
            right = next(other, None)
            if right is None or right.num_rows != left.num_rows:
                raise ValueError("the file's columns hold different numbers of rows")
            by_name = dict(zip(first, left.columns, strict=True))
            by_name.update(zip(second, right.columns, strict=True))
            yield [by_name[name] for name in columns]
        if next(other, None) is not None:
            raise ValueError("the file's columns hold different numbers of rows")


def _stream(
    path: InputFile, metadata: Any, groups: list[int], columns: Sequence[str], rows: int
) -> Iterator[pa.RecordBatch]:
    # pre_buffer (pyarrow's default) would load every row group asked for at once; one
    # decoding thread per reader, as the two readers already fill both cores. From an object
    # store it is what coalesces a row group's reads into a few requests instead of one per
    # 64 KiB buffer.
    remote = not path.local
    with pq.ParquetFile(
        path.open_random(), metadata=metadata, pre_buffer=remote, buffer_size=_BUFFER
    ) as file:
        if not remote:
            yield from file.iter_batches(rows, groups, list(columns), use_threads=False)
            return
        for group in groups:  # a reader per row group: it holds one row group's bytes at most
            yield from file.iter_batches(rows, [group], list(columns), use_threads=False)


def _halves(
    metadata: Any, groups: list[int], columns: Sequence[str]
) -> tuple[list[str], list[str]] | None:
    """The columns in two groups of about equal compressed size (the largest first, each
    to the lighter group), or None where a second reader would not pay."""
    if len(columns) < 2 or len(set(columns)) < len(columns) or (os.cpu_count() or 1) < 2:
        return None
    size = dict.fromkeys(columns, 0)
    for group in groups:
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            top = chunk.path_in_schema.split(".", 1)[0]
            if top in size:
                size[top] += chunk.total_compressed_size
    halves: tuple[list[str], list[str]] = ([], [])
    weights = [0, 0]
    for name in sorted(columns, key=lambda column: -size[column]):
        lighter = 0 if weights[0] <= weights[1] else 1
        halves[lighter].append(name)
        weights[lighter] += size[name]
    return halves

"""Record batches cut to the batch size a run asks for, whatever sizes its source yields."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa


def drop_rows(pieces: Iterable[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    """``pieces`` without their first ``skip`` rows (where a resumed run starts)."""
    for piece in pieces:
        if skip < piece.num_rows:
            yield piece.slice(skip) if skip else piece
        skip = max(0, skip - piece.num_rows)


def rebatch(pieces: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``rows`` rows but the last: slices are zero-copy, and only a batch
    made of several pieces is copied."""
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


def check_batching(rows: int, start_row: int) -> None:
    if rows < 1 or start_row < 0:
        raise ValueError(f"rows must be >= 1 and start_row >= 0, got {rows} and {start_row}")

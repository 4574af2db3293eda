"""How reading a batch's input fails, for every kind of source (files and queries)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from modelrail.errors import BatchInputError

# What Arrow and the file system raise on an input that cannot be read as asked.
READ_ERRORS = (pa.ArrowException, OSError, ValueError)


def missing_column(column: str, where: str, names: Sequence[str]) -> BatchInputError:
    return BatchInputError(
        f"input column {column!r} is missing from {where} (it has: {', '.join(names)})"
    )

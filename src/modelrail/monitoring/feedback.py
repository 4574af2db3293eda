"""Loading true outcomes (labels) for logged predictions from a file or a SQL query.

Labels are matched to predictions by the request id a prediction was logged with (the id
the server returned in its ``X-Request-Id`` header, or a batch run's id column values joined
by ``|``) and the row within the request (0 unless ``row_column`` says otherwise). They are
read the way a batch job reads its input (``batch.sources``: CSV, Parquet, a folder of them,
object storage, or a query streamed through a server-side cursor), only the columns needed,
and checked whole before anything is stored: a missing column, an empty input, a row
without an id, an id that is not a plain value leave nothing behind.

Every load is kept as its own file (``logfiles.write_feedback``); for a prediction labelled
more than once the latest label wins when labels are read, and a repeated id within one
load wins by its last row. Labels of requests not logged (yet) are kept: a prediction file
still being written, or logged on another machine, may bring them later.

The monitoring folder is local to the machine that serves (unless ``[monitoring] root``
names a shared one), so labels are loaded where the logs are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from modelrail.batch.input_files import find_files, kind_of
from modelrail.batch.sources import open_source
from modelrail.batch.spec import DEFAULT_BATCH_ROWS, JobSpec
from modelrail.errors import BatchInputError, FeedbackError, InvalidInputError
from modelrail.monitoring import logfiles

ID_SEPARATOR = "|"


@dataclass(frozen=True)
class FeedbackSummary:
    """What a load stored."""

    model: str
    source: str  # the file or query, as shown
    labels: int  # labels stored
    replaced: int  # predictions that had a label already: the new one wins
    unmatched: int  # labels whose request id matches no logged prediction (yet): kept
    repeated: int  # ids given more than once in this load: the last row wins
    skipped: int  # rows without a label (empty label cell): not stored
    path: str | None  # the file written


def load_feedback(
    root: str | Path,
    model: str,
    *,
    inputs: Sequence[str] = (),
    query: str | None = None,
    query_url: str | None = None,
    id_columns: Sequence[str],
    label_column: str,
    row_column: str | None = None,
    loaded_by: str,
    now: float,
) -> FeedbackSummary:
    """Read labels of ``model`` from ``inputs`` (files or folders) or ``query`` (SQL run on
    ``query_url``) and store them under the monitoring folder ``root``; ``FeedbackError``
    (nothing stored) when they cannot be read or lack an id or label column."""
    if not inputs and query is None:
        raise FeedbackError("no labels to load: give a file (or folder) or a query")
    if inputs and query is not None:
        raise FeedbackError("give either a file (or folder) or a query, not both")
    table, shown = _read(inputs, query, query_url, id_columns, label_column, row_column)
    if table.num_rows == 0:
        raise FeedbackError(f"{shown} has no rows: no labels to load")
    ids = _ids(table, id_columns, shown)
    labels = table.column(label_column)
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    _check_label_type(labels, label_column, shown)
    rows = None
    if row_column is not None:
        rows = _rows(table.column(row_column), row_column, shown)
    if pa.types.is_string(labels.type) or pa.types.is_large_string(labels.type):
        labels = _blank_as_null(labels)
    keep = pc.is_valid(labels)
    if pa.types.is_floating(labels.type):
        keep = pc.and_(keep, pc.invert(pc.is_nan(labels)))
    skipped = len(labels) - int(pc.sum(keep).as_py() or 0)
    if skipped == len(labels):
        raise FeedbackError(f"label column {label_column!r} of {shown} is empty in every row")
    if skipped:
        ids, labels = ids.filter(keep), labels.filter(keep)
        rows = None if rows is None else rows.filter(keep)
    source = Path(shown).name if query is None else "query"
    try:
        loaded = logfiles.feedback_table(
            ids, labels, rows=rows, source=source, loaded_by=loaded_by, now=now
        )
    except (InvalidInputError, pa.ArrowException) as exc:
        raise FeedbackError(f"cannot load the labels of {shown}: {exc}") from exc
    keys = loaded.select(["request_id", "row"])
    distinct = keys.group_by(["request_id", "row"]).aggregate([]).num_rows
    earlier = logfiles.read_feedback(root, model)
    replaced = _matching(keys, earlier)
    logged = logfiles.read_log(
        root, logfiles.PREDICTIONS, model, columns=["request_id", "row", "time"]
    )
    matched = 0 if logged is None else _matching(keys, logged)
    written = logfiles.write_table(root, logfiles.FEEDBACK, model, loaded)
    return FeedbackSummary(
        model=model,
        source=shown,
        labels=loaded.num_rows,
        replaced=replaced,
        unmatched=distinct - matched,
        repeated=loaded.num_rows - distinct,
        skipped=skipped,
        path=None if written is None else str(written),
    )


def _read(
    inputs: Sequence[str],
    query: str | None,
    query_url: str | None,
    id_columns: Sequence[str],
    label_column: str,
    row_column: str | None,
) -> tuple[pa.Table, str]:
    columns = list(
        dict.fromkeys([*id_columns, label_column, *([row_column] if row_column else [])])
    )
    shown = "the query" if query is not None else ", ".join(inputs)
    try:
        if query is None:
            for raw in inputs:
                path = Path(raw)
                if path.exists() and not path.is_dir() and kind_of(path.name) is None:
                    raise FeedbackError(
                        f"{raw} is neither a Parquet (.parquet) nor a CSV (.csv, .csv.gz) file"
                    )
            files = find_files(inputs) if inputs else []
            if len(files) == 1:
                shown = files[0].shown
        spec = JobSpec(
            reference="-",
            output="-",
            id_columns=tuple(id_columns),
            inputs=tuple(inputs),
            query=query,
            query_url=query_url,
        )
        source = open_source(spec, columns=columns)
        try:
            shown = source.description if query is not None else shown
            batches = list(source.batches(DEFAULT_BATCH_ROWS))
            return pa.Table.from_batches(batches, schema=source.schema), shown
        finally:
            source.close()
    except BatchInputError as exc:
        # The same words as for a batch job's input; the parameters are this call's too.
        raise FeedbackError(exc.template, params=exc.params) from exc


def _ids(table: pa.Table, id_columns: Sequence[str], shown: str) -> pa.Array:
    parts = []
    for name in id_columns:
        column = table.column(name).combine_chunks()
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.dictionary_decode(), kind.value_type
        plain = (
            pa.types.is_integer(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or (pa.types.is_floating(kind) and _whole(column))
        )
        if not plain:
            raise FeedbackError(
                f"id column {name!r} of {shown} holds {kind} values: a request id is text or a "
                "whole number"
            )
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            column = _blank_as_null(column)  # a CSV's empty cell is "" there
        missing = column.null_count
        if missing:
            raise FeedbackError(
                f"id column {name!r} of {shown} is empty in {missing:,} row(s): every label "
                "needs the id of its prediction"
            )
        if pa.types.is_floating(kind):
            column = column.cast(pa.int64())
        parts.append(column.cast(pa.string()))
    if len(parts) == 1:
        return parts[0]
    joined: pa.Array = pc.binary_join_element_wise(*parts, ID_SEPARATOR)
    return joined


def _blank_as_null(text: pa.Array) -> pa.Array:
    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    return pc.if_else(blank, pa.scalar(None, text.type), text)


def _whole(column: pa.Array) -> bool:
    present = pc.drop_null(column)
    if len(present) == 0:
        return True
    finite = pc.all(pc.is_finite(present)).as_py()
    return bool(finite) and bool(pc.all(pc.equal(present, pc.floor(present))).as_py())


def _check_label_type(labels: pa.Array, name: str, shown: str) -> None:
    kind = labels.type.value_type if pa.types.is_dictionary(labels.type) else labels.type
    if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        raise FeedbackError(
            f"label column {name!r} of {shown} holds {kind} values: a label is a class or a number"
        )


def _rows(column: pa.ChunkedArray, name: str, shown: str) -> pa.Array:
    array = column.combine_chunks()
    if not (
        pa.types.is_integer(array.type) or (pa.types.is_floating(array.type) and _whole(array))
    ):
        raise FeedbackError(
            f"row column {name!r} of {shown} holds {array.type} values: a row is a whole number"
        )
    if array.null_count:
        raise FeedbackError(
            f"row column {name!r} of {shown} is empty in {array.null_count:,} row(s)"
        )
    try:
        return array.cast(pa.int32())
    except pa.ArrowInvalid as exc:
        raise FeedbackError(
            f"row column {name!r} of {shown} has a row number out of range"
        ) from exc


def _matching(keys: pa.Table, other: pa.Table) -> int:
    """How many distinct (request_id, row) of ``keys`` appear in ``other``."""
    if other.num_rows == 0:
        return 0
    theirs = other.select(["request_id", "row"]).group_by(["request_id", "row"]).aggregate([])
    ours = keys.group_by(["request_id", "row"]).aggregate([])
    return int(ours.join(theirs, keys=["request_id", "row"], join_type="inner").num_rows)

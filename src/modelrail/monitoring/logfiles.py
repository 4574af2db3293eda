"""Prediction logs and labels as Parquet files under the monitoring folder.

```
predictions/model=NAME/date=YYYY-MM-DD/<epoch ms>-<pid>-<random>.parquet
feedback/model=NAME/date=YYYY-MM-DD/<epoch ms>-<pid>-<random>.parquet
```

Every file is written whole under a temporary name, flushed to disk and renamed: a crash
leaves whole files and stray ``*.tmp`` files that readers ignore, never a torn Parquet file.
A file's date folder is the day of its earliest record, so a reader asking for a time range
opens only the days that can hold it. Files of one model written by different versions may
differ in their ``input.*`` columns; readers unify them, missing columns read as null.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modelrail.errors import InvalidInputError, MonitoringDataError
from modelrail.monitoring.storage import MonitoringFolder

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
INPUT_PREFIX = "input."
TIME_TYPE = pa.timestamp("us", tz="UTC")

# The columns every prediction file has, in this order, before its input.* columns.
PREDICTION_FIELDS = (
    pa.field("request_id", pa.string()),
    pa.field("row", pa.int32()),
    pa.field("time", TIME_TYPE),
    pa.field("model", pa.string()),
    pa.field("version", pa.int64()),
    pa.field("environment", pa.string()),
    pa.field("source", pa.string()),
    pa.field("sample_rate", pa.float64()),
    pa.field("latency_ms", pa.float64()),
    pa.field("prediction", pa.string()),
    pa.field("prediction_value", pa.float64()),
)
FEEDBACK_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string()),
        pa.field("row", pa.int32()),
        pa.field("label", pa.string()),
        pa.field("label_value", pa.float64()),
        pa.field("time", TIME_TYPE),
        pa.field("source", pa.string()),
        pa.field("loaded_by", pa.string()),
    ]
)


Root = str | Path | MonitoringFolder


def folder_of(root: Root) -> MonitoringFolder:
    return root if isinstance(root, MonitoringFolder) else MonitoringFolder(root)


def model_folder(kind: str, model: str) -> str:
    """The folder of ``model``'s ``kind`` log, relative to the monitoring folder."""
    return f"{kind}/model={model}"


def write_table(
    root: Root, kind: str, model: str, table: pa.Table, *, name: str | None = None
) -> str | None:
    """``table`` as one new file of ``model``'s ``kind`` log (``name``: its file name, else
    a new unique one); None when it has no rows, else the file as messages show it."""
    if table.num_rows == 0:
        return None
    folder = folder_of(root)
    first = pc.min(table.column("time")).as_py()
    day = (first or datetime.now(UTC)).strftime("%Y-%m-%d")
    name = name or f"{int(time.time() * 1000)}-{os.getpid()}-{secrets.token_hex(4)}.parquet"
    # Dictionary encoding pays for text (a model name, a class, a category repeated) but
    # not for measurements: tried on every float column it tripled a write's time.
    text = [f.name for f in table.schema if pa.types.is_string(f.type)]

    def write(handle: IO[bytes]) -> None:
        pq.write_table(table, handle, compression="zstd", use_dictionary=text)

    relative = f"{model_folder(kind, model)}/date={day}/{name}"
    folder.write_whole(relative, write)
    return folder.shown_path(relative)


def log_files(root: Root, kind: str, model: str, *, since: float | None = None) -> list[str]:
    """The whole files of ``model``'s ``kind`` log that can hold records at or after
    ``since``, relative to the monitoring folder."""
    folder = folder_of(root)
    base = model_folder(kind, model)
    # A file's folder is the day of its first record; its last may be a day later.
    first_day = None if since is None else _day(since - 86_400)
    files = []
    for day in folder.folders(base):
        if not day.startswith("date=") or (first_day is not None and day[5:] < first_day):
            continue
        files += folder.files(f"{base}/{day}", suffix=".parquet")
    return files


def read_log(
    root: Root,
    kind: str,
    model: str,
    *,
    since: float | None = None,
    until: float | None = None,
    columns: Iterable[str] | None = None,
) -> pa.Table | None:
    """The records of ``model``'s ``kind`` log with ``since <= time < until``; None when
    there are no files at all."""
    folder = folder_of(root)
    files = log_files(folder, kind, model, since=since)
    if not files:
        return None
    wanted = None if columns is None else list(columns)
    tables = []
    for relative in files:
        path = folder.full(relative)
        try:
            present = _present(folder, path, wanted)
            table = pq.read_table(path, columns=present, filesystem=folder.filesystem)
        except (pa.ArrowException, OSError) as exc:
            shown = folder.shown_path(relative)
            raise MonitoringDataError(f"cannot read monitoring file {shown}: {exc}") from exc
        tables.append(_within(table, since, until))
    return _concat(tables)


def _present(folder: MonitoringFolder, path: str, wanted: list[str] | None) -> list[str] | None:
    if wanted is None:
        return None
    names = set(pq.read_schema(path, filesystem=folder.filesystem).names)
    return [name for name in wanted if name in names]


def _within(table: pa.Table, since: float | None, until: float | None) -> pa.Table:
    mask = None
    times = table.column("time")
    if since is not None:
        mask = pc.greater_equal(times, pa.scalar(_moment(since), TIME_TYPE))
    if until is not None:
        before = pc.less(times, pa.scalar(_moment(until), TIME_TYPE))
        mask = before if mask is None else pc.and_(mask, before)
    return table if mask is None else table.filter(mask)


def _concat(tables: list[pa.Table]) -> pa.Table:
    """One table of ``tables``, whose columns may differ: a column missing in one reads as
    null there, and one whose type differs between files is read as text."""
    types: dict[str, list[pa.DataType]] = {}
    for table in tables:
        for item in table.schema:
            types.setdefault(item.name, []).append(item.type)
    target = {}
    for name, seen in types.items():
        distinct = {str(t) for t in seen if not pa.types.is_null(t)}
        kinds = [t for t in seen if not pa.types.is_null(t)]
        target[name] = pa.string() if len(distinct) > 1 else (kinds[0] if kinds else pa.null())
    schema = pa.schema([pa.field(name, kind) for name, kind in target.items()])
    aligned = []
    for table in tables:
        arrays = [
            table.column(name).cast(kind)
            if name in table.column_names
            else pa.nulls(table.num_rows, kind)
            for name, kind in target.items()
        ]
        aligned.append(pa.Table.from_arrays(arrays, schema=schema))
    return pa.concat_tables(aligned) if aligned else schema.empty_table()


def read_predictions(
    root: Root,
    model: str,
    *,
    since: float | None = None,
    until: float | None = None,
    environment: str | None = None,
    version: int | None = None,
) -> pa.Table:
    """Logged predictions of ``model`` (every column), empty when nothing was logged."""
    table = read_log(root, PREDICTIONS, model, since=since, until=until)
    if table is None:
        return pa.schema(list(PREDICTION_FIELDS)).empty_table()
    if environment is not None:
        table = table.filter(pc.equal(table.column("environment"), environment))
    if version is not None:
        table = table.filter(pc.equal(table.column("version"), version))
    return table


# -- labels ------------------------------------------------------------------------------------


def feedback_table(
    request_ids: Any, labels: Any, *, rows: Any = None, source: str, loaded_by: str, now: float
) -> pa.Table:
    """Labels in the feedback file layout: ids and labels as text (a number's text as Python
    prints it, so 1 and 1.0 agree), the number itself where the label is one."""
    ids = _as_text(pa.array(request_ids) if not isinstance(request_ids, pa.Array) else request_ids)
    values = labels if isinstance(labels, pa.Array | pa.ChunkedArray) else pa.array(labels)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    count = len(ids)
    if len(values) != count:
        raise InvalidInputError(f"{count} ids but {len(values)} labels")
    missing_ids = ids.null_count
    if missing_ids:
        raise InvalidInputError(f"{missing_ids} labels have no id: every label needs one")
    numeric = pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
    row_values = pa.array(rows if rows is not None else [0] * count, pa.int32())
    return pa.Table.from_arrays(
        [
            ids,
            row_values,
            _label_text(values),
            values.cast(pa.float64()) if numeric else pa.nulls(count, pa.float64()),
            pa.array([_moment(now)] * count, TIME_TYPE),
            pa.array([source] * count, pa.string()),
            pa.array([loaded_by] * count, pa.string()),
        ],
        schema=FEEDBACK_SCHEMA,
    )


def _as_text(values: pa.Array) -> pa.Array:
    if pa.types.is_floating(values.type):
        # An id read as 17.0 (a float column with gaps) is the id 17.
        whole = pc.equal(values, pc.floor(values))
        if pc.all(whole).as_py() is not False:
            return values.cast(pa.int64()).cast(pa.string())
    return values.cast(pa.string())


def _label_text(values: pa.Array) -> pa.Array:
    if pa.types.is_floating(values.type):
        return _as_text(values)
    if pa.types.is_boolean(values.type):
        # Labels compare with predictions as the API answers them: JSON true / false.
        return pc.if_else(values, "true", "false")
    return values.cast(pa.string())


def write_feedback(root: Root, model: str, table: pa.Table) -> int:
    """Store labels built by ``feedback_table``; the number of labels stored."""
    write_table(root, FEEDBACK, model, table.cast(FEEDBACK_SCHEMA))
    return int(table.num_rows)


def read_feedback(root: Root, model: str, *, since: float | None = None) -> pa.Table:
    """The latest label per (request_id, row): a later label replaces an earlier one."""
    table = read_log(root, FEEDBACK, model, since=since)
    if table is None or table.num_rows == 0:
        return FEEDBACK_SCHEMA.empty_table()
    ordered = table.sort_by([("time", "ascending")])
    latest = ordered.group_by(["request_id", "row"], use_threads=False).aggregate(
        [(name, "last") for name in ("label", "label_value", "time", "source")]
    )
    names = ["request_id", "row", "label", "label_value", "label_time", "source"]
    return latest.rename_columns(names)


def labelled_predictions(
    root: Root,
    model: str,
    *,
    since: float | None = None,
    until: float | None = None,
    environment: str | None = None,
) -> pa.Table:
    """Logged predictions that have a label, with ``label``, ``label_value``, ``label_time``."""
    predictions = read_predictions(root, model, since=since, until=until, environment=environment)
    labels = read_feedback(root, model, since=since).drop_columns(["source"])
    if predictions.num_rows == 0 or labels.num_rows == 0:
        extra = [
            pa.field("label", pa.string()),
            pa.field("label_value", pa.float64()),
            pa.field("label_time", TIME_TYPE),
        ]
        return pa.schema([*predictions.schema, *extra]).empty_table()
    return predictions.join(labels, keys=["request_id", "row"], join_type="inner")


# -- retention ---------------------------------------------------------------------------------


def enforce_retention(root: Root, model: str, *, older_than: float) -> int:
    """Remove ``model``'s prediction and label files of days wholly before ``older_than``
    (epoch seconds); the number of files removed."""
    folder = folder_of(root)
    # A day folder holds files whose first record is of that day; the last may be a day later.
    cut = _day(older_than - 86_400)
    removed = 0
    for kind in (PREDICTIONS, FEEDBACK):
        base = model_folder(kind, model)
        for day in folder.folders(base):
            if not day.startswith("date=") or day[5:] >= cut:
                continue
            for relative in folder.files(f"{base}/{day}"):
                folder.remove(relative)
                removed += relative.endswith(".parquet")
            folder.remove_empty_folder(f"{base}/{day}")
    return removed


def logged_models(root: Root) -> list[str]:
    """Models that have a prediction or label log under ``root``."""
    folder = folder_of(root)
    names = set()
    for kind in (PREDICTIONS, FEEDBACK):
        names |= {n[len("model=") :] for n in folder.folders(kind) if n.startswith("model=")}
    return sorted(names)


def _day(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def _moment(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)

"""A SQL query as a batch source: its rows streamed through a server-side cursor in chunks
and turned into Arrow batches column by column.

Its fingerprint covers the database URL (without password) and the query text only: the rows
the query returns are not hashed. Columns whose type cannot be told (all NULL in the first
chunk, or an empty result, and no ``column_types`` entry) are read as float64; PostgreSQL's
own column types are used where the driver reports them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, CursorResult, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from modelrail.batch.input_errors import READ_ERRORS, missing_column
from modelrail.batch.rebatching import check_batching, rebatch
from modelrail.errors import BatchInputError
from modelrail.urls import hide_password

_PG_TYPES = {16: pa.bool_(), 20: pa.int64(), 21: pa.int64(), 23: pa.int64(), 700: pa.float64(),
             701: pa.float64(), 25: pa.string(), 1043: pa.string(), 1082: pa.date32(),
             1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC")}  # fmt: skip


class QuerySource:
    total_rows: int | None = None

    def __init__(
        self, query: str, raw: str, prefetch: int, columns: list[str] | None, types: dict[str, Any]
    ) -> None:
        try:
            given = make_url(raw)
        except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
            shown = hide_password(raw)
            raise BatchInputError(
                f"malformed {{query_url}} {shown!r}: expected e.g. "
                "postgresql://user@host/database or sqlite:///path/to/file.db",
                params=("query_url",),
            ) from exc
        url = given
        if given.drivername in ("postgres", "postgresql"):
            url = given.set(drivername="postgresql+psycopg")
        self._shown = given.render_as_string(hide_password=True)
        self.description = f"query on {self._shown}"
        identity = f"{url.set(password=None).render_as_string()}\n{query}"
        self._fingerprint, self._query = hashlib.sha256(identity.encode()).hexdigest(), query
        file = url.database or ""
        sqlite = url.get_backend_name() == "sqlite" and file not in ("", ":memory:")
        if sqlite and not Path(file).is_file():  # SQLite would create an empty database
            raise BatchInputError(
                f"cannot connect to {self._shown}: database file {file} does not exist"
            )
        try:
            self._engine = create_engine(url)
        except (NoSuchModuleError, ImportError) as exc:
            raise BatchInputError(f"no database driver for {self._shown}: {exc}") from exc
        self._connection: Connection | None = None
        self._result: CursorResult[Any] | None = None
        self._first: Sequence[Any] | None = self._execute(prefetch)
        try:
            self.schema = self._infer(columns, types)
        except BaseException:
            self.close()  # an open cursor would hold its locks
            raise

    def _infer(self, columns: list[str] | None, types: dict[str, pa.DataType]) -> pa.Schema:
        names = list(self._result.keys()) if self._result is not None else []
        picked = names if columns is None else columns
        for column in picked:
            if column not in names:
                raise missing_column(column, f"the query result on {self._shown}", names)
        self._indices = [names.index(column) for column in picked]
        fields = []
        for column, index in zip(picked, self._indices, strict=True):
            kind = types.get(column)
            if kind is None and self._first:
                kind = self._array(column, [row[index] for row in self._first], None).type
            if kind is None or pa.types.is_null(kind):
                code = self._codes[index] if index < len(self._codes) else None
                kind = _PG_TYPES.get(code, pa.float64()) if isinstance(code, int) else pa.float64()
            fields.append((column, kind))
        return pa.schema(fields)

    def _execute(self, rows: int) -> Sequence[Any]:
        self.close()
        try:
            self._connection = self._engine.connect()
        except SQLAlchemyError as exc:
            raise BatchInputError(f"cannot connect to {self._shown}: {_reason(exc)}") from exc
        try:
            result = self._connection.execution_options(yield_per=rows).execute(text(self._query))
        except SQLAlchemyError as exc:
            self.close()
            raise BatchInputError(f"the query failed on {self._shown}: {_reason(exc)}") from exc
        self._result = result
        if not result.returns_rows:
            self.close()
            raise BatchInputError(f"the query on {self._shown} returns no rows: use a SELECT")
        self._codes = [entry[1] for entry in result.cursor.description or []]  # type per column
        return self._fetch(rows)

    def _fetch(self, rows: int) -> Sequence[Any]:
        try:
            return self._result.fetchmany(rows) if self._result is not None else []
        except SQLAlchemyError as exc:
            raise BatchInputError(f"the query failed on {self._shown}: {_reason(exc)}") from exc

    def fingerprint(self) -> str:
        return self._fingerprint

    def batches(
        self, rows: int, *, start_row: int = 0, parallel: bool = False
    ) -> Iterator[pa.RecordBatch]:
        check_batching(rows, start_row)
        chunk = self._first if self._first is not None else self._execute(rows)
        self._first = None  # a second call runs the query again
        yield from rebatch(self._chunks(chunk, rows, start_row), rows)

    def _chunks(self, chunk: Sequence[Any], rows: int, skip: int) -> Iterator[pa.RecordBatch]:
        while chunk:
            if skip < len(chunk):  # skipped rows are never turned into Arrow
                values = list(zip(*chunk[skip:], strict=True))
                arrays = [
                    self._array(field.name, values[index], field.type)
                    for field, index in zip(self.schema, self._indices, strict=True)
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)
            skip = max(0, skip - len(chunk))
            chunk = self._fetch(rows)

    def _array(self, name: str, values: Sequence[Any], kind: pa.DataType | None) -> pa.Array:
        try:
            array = pa.array(values)  # then a safe cast: pa.array(type=int64) truncates 1.5
            return array if kind is None or array.type == kind else array.cast(kind)
        except (*READ_ERRORS, TypeError) as exc:
            wanted = f"not {kind}" if kind is not None else "of mixed types"
            raise BatchInputError(
                f"query column {name!r} on {self._shown} has a value {wanted}: {exc}"
            ) from exc

    def close(self) -> None:
        if self._result is not None:
            self._result.close()  # a server-side cursor outlives its connection otherwise
            self._result = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()  # the engine can still connect again afterwards


def _reason(exc: Exception) -> str:
    return str(exc.orig if isinstance(exc, DBAPIError) else exc).strip()

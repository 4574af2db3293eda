"""SQLite output: a whole run in one ``BEGIN IMMEDIATE`` transaction of multi-row
``INSERT`` statements keyed on the id columns (upserts, where the table has rows).

One transaction makes the run atomic (readers see all of it or nothing; a killed process
leaves nothing, SQLite's journal rolls it back) and a re-run replaces rows instead of
adding them. A missing table is created by that transaction too (SQLite's DDL is
transactional), so a run that fails leaves no empty table behind. The run's constants are
written into the statement as literals, so each row binds only its own values: that is most
of the speed of ``executemany``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, MetaData, create_engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateTable

from modelrail.batch import arrays
from modelrail.batch.scorer import REJECT_SCHEMA, STAMP_FIELDS, RunStamp, ScoredBatch
from modelrail.batch.sinks.base import Checkpoint, Committed
from modelrail.batch.sinks.sql_tables import (
    TableName,
    committed_rows,
    create_or_check,
    output_table,
    quote_identifier,
    rejects_table,
)
from modelrail.errors import BatchOutputError

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_ROWS_PER_STATEMENT = 256


class SQLiteSink:
    resumable = False
    atomic = True
    outpaces_decoding = False

    def __init__(self, path: Path, table: str | None) -> None:
        self.path = path
        self.table = TableName.parse(table)
        self.location = f"sqlite:///{path} table {self.table}"
        if self.table.schema is not None:
            raise BatchOutputError(
                f"SQLite has no schemas: {{table}} {self.table} names one", params=("table",)
            )
        if not path.parent.is_dir():
            raise BatchOutputError(f"cannot write {self.location}: folder {path.parent} is missing")
        self._columns: list[str] = []
        self._id_columns: tuple[str, ...] = ()
        self._creations: list[str] = []  # CREATE TABLE of the tables missing at ``prepare``

    def prepare(self, schema: pa.Schema, id_columns: tuple[str, ...], with_rejects: bool) -> None:
        where = f"sqlite:///{self.path}"
        metadata = MetaData()
        wanted = [(output_table(self.table, schema, id_columns, metadata), id_columns)]
        if with_rejects:
            rejects = rejects_table(self.table.rejects, metadata)
            wanted.append((rejects, ("batch_run_id", "row_number")))
        dialect = sqlite.dialect()
        creations = []
        with self._engine() as engine:
            for table, key in wanted:
                if not create_or_check(engine, table, key, where, create=False):
                    ddl = CreateTable(table, if_not_exists=True).compile(dialect=dialect)
                    creations.append(str(ddl))
        self._creations = creations
        self._columns = [f.name for f in schema]
        self._id_columns = id_columns

    @contextmanager
    def _engine(self) -> Iterator[Engine]:
        engine = create_engine(f"sqlite:///{self.path}")
        try:
            yield engine
        finally:
            engine.dispose()

    def open(self, stamp: RunStamp, resume: Checkpoint | None) -> SQLiteWriter:
        return SQLiteWriter(self, stamp)

    def committed(self, run_id: str) -> Committed | None:
        # (The upsert skips rows of the same run, so writing them again would look like
        # an id the input repeats.)
        with self._engine() as engine:
            return committed_rows(engine, self.table, run_id, f"sqlite:///{self.path}")

    def staged_runs(self) -> list[str]:
        return []

    def discard(self, run_id: str) -> None:
        return None

    def close(self) -> None:
        return None


class SQLiteWriter:
    def __init__(self, sink: SQLiteSink, stamp: RunStamp) -> None:
        self.sink = sink
        self.stamp = stamp
        try:
            self.conn = sqlite3.connect(sink.path, isolation_level=None, timeout=60)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            # 16 MB of page cache: appending in id order needs little, and every MB counts
            # toward the 300 MB a run may take.
            self.conn.execute("PRAGMA cache_size = -16384")
            self.conn.execute("BEGIN IMMEDIATE")
            for creation in sink._creations:
                self.conn.execute(creation)
        except sqlite3.Error as exc:
            raise BatchOutputError(f"cannot write {sink.location}: {exc}") from exc
        self._max_variables = self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        columns = [*sink._columns, *(f.name for f in STAMP_FIELDS)]
        table = quote_identifier(sink.table.name)
        listed = ", ".join(map(quote_identifier, columns))
        self._insert_head = f"INSERT INTO {table} ({listed}) VALUES "
        self._placeholders = ", ".join("?" for _ in sink._columns)
        try:
            had_rows = self.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            # Into an empty table a plain INSERT, so an id the input repeats is an error of
            # its own; into one with rows, an upsert that replaces rows of earlier runs (in
            # place: 4x faster than deleting each id first) and skips rows of this run, which
            # ``write`` counts (a skipped row is an id the input repeats).
            self._upsert = "" if had_rows is None else self._upsert_clause(columns)
        except sqlite3.Error as exc:
            self.abort()
            raise BatchOutputError(f"cannot read {sink.location}: {exc}") from exc

    def _upsert_clause(self, columns: list[str]) -> str:
        table = quote_identifier(self.sink.table.name)
        ids = self.sink._id_columns
        values = {c: f"excluded.{quote_identifier(c)}" for c in columns if c not in ids}
        # Columns of the table that the run does not write get their defaults, as in a new
        # row (hidden 0: not a generated column).
        for _, name, _, _, default, _, hidden in self.conn.execute(
            f"PRAGMA table_xinfo({table})"
        ).fetchall():
            if name not in columns and hidden == 0:
                values[name] = default if default is not None else "NULL"
        assignments = ", ".join(f"{quote_identifier(c)} = {v}" for c, v in values.items())
        return (
            f" ON CONFLICT ({', '.join(map(quote_identifier, ids))}) DO UPDATE SET {assignments}"
            f" WHERE {table}.batch_run_id IS NOT excluded.batch_run_id"
        )

    def write(self, scored: ScoredBatch, scored_at: float) -> None:
        when = _literal(_time_text(scored_at))
        constants = (
            f"{_literal(self.stamp.model)}, {int(self.stamp.version)}, "
            f"{_literal(self.stamp.run_id)}, {when}"
        )
        try:
            if scored.output.num_rows:
                changed = self._insert(scored.output, f"({self._placeholders}, {constants})")
                if changed != scored.output.num_rows:
                    raise _repeated_id(self.sink.location)
            if scored.rejects is not None and scored.rejects.num_rows:
                self._write_rejects(scored.rejects, when)
        except sqlite3.IntegrityError as exc:
            raise _repeated_id(self.sink.location, exc) from exc
        except sqlite3.Error as exc:
            raise BatchOutputError(f"writing {self.sink.location} failed: {exc}") from exc

    def _insert(self, batch: pa.RecordBatch, row: str) -> int:
        """Many rows per statement: binding stays per value, but SQLite steps once per
        statement instead of once per row, which more than doubles the speed. Returns the
        rows inserted or replaced (not those of triggers, unlike ``total_changes``)."""
        width = batch.num_columns
        per_statement = max(1, min(_ROWS_PER_STATEMENT, self._max_variables // width))
        values: list[Any] = [None] * (batch.num_rows * width)
        for j, column in enumerate(batch.columns):
            values[j::width] = _python_values(column)
        step = per_statement * width
        whole = (len(values) // step) * step
        changed = 0
        if whole:
            statement = self._insert_head + ", ".join([row] * per_statement) + self._upsert
            chunks = (values[i : i + step] for i in range(0, whole, step))
            changed += self.conn.executemany(statement, chunks).rowcount
        if whole < len(values):
            rest = (len(values) - whole) // width
            statement = self._insert_head + ", ".join([row] * rest) + self._upsert
            changed += self.conn.execute(statement, values[whole:]).rowcount
        return changed

    def _write_rejects(self, rejects: pa.RecordBatch, when: str) -> None:
        names = ", ".join(quote_identifier(f.name) for f in REJECT_SCHEMA)
        table = quote_identifier(self.sink.table.rejects.name)
        self.conn.executemany(
            f"INSERT OR REPLACE INTO {table} ({names}, rejected_at) VALUES (?, ?, ?, ?, {when})",
            _rows(rejects),
        )

    def parts_done(self) -> int | None:
        return None

    def commit(self, input_key: str) -> None:
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise BatchOutputError(f"committing {self.sink.location} failed: {exc}") from exc
        finally:
            self.conn.close()

    def abort(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the connection is closing anyway; SQLite's journal undoes the rest
        finally:
            self.conn.close()


def _repeated_id(location: str, cause: sqlite3.Error | None = None) -> BatchOutputError:
    said = f"{cause} " if cause is not None else ""
    return BatchOutputError(
        f"writing {location} failed: {said}(the input has an id twice: ids must be unique "
        "within a run); nothing was written"
    )


def _rows(batch: pa.RecordBatch) -> Any:
    return zip(*(_python_values(column) for column in batch.columns), strict=True)


def _python_values(column: pa.Array) -> list[Any]:
    """As SQLite stores them: times as ISO texts."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = pc.cast(column, pa.timestamp(kind.unit))
        return list(pc.strftime(column, format=_TIME_FORMAT).to_pylist())
    if pa.types.is_date(kind):
        return [None if v is None else v.isoformat() for v in column.to_pylist()]
    return arrays.python_values(column)


def _time_text(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime(_TIME_FORMAT)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

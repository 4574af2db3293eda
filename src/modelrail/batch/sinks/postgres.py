"""PostgreSQL output: a whole run in one transaction of bulk ``COPY``s.

Writers of one table take an advisory lock, so two runs into the same table queue instead
of racing. A missing table is created by the run's own transaction and gets its primary key
after the rows are in (one index build is cheaper than filling the index row by row); a
table that has rows takes the run's rows through a temporary stage that replaces rows of
the same ids at the end. The transaction makes the run atomic, and a killed client's
transaction is rolled back by the server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
from sqlalchemy import Engine, MetaData, Table, create_engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateTable

from modelrail.batch.scorer import REJECT_SCHEMA, STAMP_FIELDS, RunStamp, ScoredBatch
from modelrail.batch.sinks.base import Checkpoint, Committed
from modelrail.batch.sinks.pg_copy import CopyStream
from modelrail.batch.sinks.sql_tables import (
    TableName,
    committed_rows,
    create_or_check,
    key_name,
    one_line,
    output_table,
    quote_identifier,
    rejects_table,
)
from modelrail.errors import BatchOutputError


class PostgresSink:
    resumable = False
    atomic = True
    outpaces_decoding = False

    def __init__(self, url: URL, table: str | None) -> None:
        self.url = url.set(drivername="postgresql+psycopg")
        self.table = TableName.parse(table)
        self._database = self.url.set(drivername="postgresql").render_as_string(hide_password=True)
        self.location = f"{self._database} table {self.table}"
        self._schema: pa.Schema | None = None
        self._id_columns: tuple[str, ...] = ()
        self._table: Table | None = None
        # (CREATE TABLE without the key, ALTER TABLE adding it) when the table is missing
        self.creation: tuple[str, str] | None = None

    def prepare(self, schema: pa.Schema, id_columns: tuple[str, ...], with_rejects: bool) -> None:
        metadata = MetaData()
        table = output_table(self.table, schema, id_columns, metadata)
        with self._engine() as engine:
            existed = create_or_check(engine, table, id_columns, self._database, create=False)
            if with_rejects:
                rejects = rejects_table(self.table.rejects, metadata)
                create_or_check(engine, rejects, ("batch_run_id", "row_number"), self._database)
        if not existed:
            keyless = output_table(self.table, schema, id_columns, MetaData(), keyed=False)
            dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
            create = str(CreateTable(keyless).compile(dialect=dialect))
            listed = ", ".join(map(quote_identifier, id_columns))
            key = quote_identifier(key_name(self.table))
            add_key = (
                f"ALTER TABLE {_qualified(self.table)} ADD CONSTRAINT {key} PRIMARY KEY ({listed})"
            )
            self.creation = (create, add_key)
        self._schema, self._id_columns, self._table = schema, id_columns, table

    def check_existing(self) -> None:
        """The table that another run created since ``prepare`` found it missing must fit."""
        assert self._table is not None, "prepare() first"
        with self._engine() as engine:
            create_or_check(engine, self._table, self._id_columns, self._database, create=False)

    @contextmanager
    def _engine(self) -> Iterator[Engine]:
        try:
            engine = create_engine(self.url, connect_args={"connect_timeout": 10})
        except (ModuleNotFoundError, SQLAlchemyError) as exc:
            raise BatchOutputError(
                f"cannot write {self.location}: the PostgreSQL driver is missing "
                "(pip install 'modelrail[postgres]')"
            ) from exc
        try:
            yield engine
        finally:
            engine.dispose()

    def open(self, stamp: RunStamp, resume: Checkpoint | None) -> PostgresWriter:
        assert self._schema is not None, "prepare() first"
        return PostgresWriter(self, self._schema, self._id_columns, stamp)

    def committed(self, run_id: str) -> Committed | None:
        with self._engine() as engine:
            return committed_rows(engine, self.table, run_id, self._database)

    def staged_runs(self) -> list[str]:
        return []

    def discard(self, run_id: str) -> None:
        return None

    def close(self) -> None:
        return None

    def conninfo(self) -> str:
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresWriter:
    def __init__(
        self,
        sink: PostgresSink,
        schema: pa.Schema,
        id_columns: tuple[str, ...],
        stamp: RunStamp,
    ) -> None:
        import psycopg

        self.sink = sink
        self.stamp = stamp
        self.id_columns = id_columns
        self._psycopg_error = psycopg.Error
        table = sink.table
        self.target = _qualified(table)
        self.rejects_target = _qualified(table.rejects)
        names = [f.name for f in schema] + [f.name for f in STAMP_FIELDS]
        reject_names = [f.name for f in REJECT_SCHEMA] + ["rejected_at"]
        listed_rejects = ", ".join(map(quote_identifier, reject_names))
        self.copy_rejects_sql = f"COPY {self.rejects_target} ({listed_rejects}) FROM STDIN"
        self.names = names
        match = " AND ".join(
            f"t.{quote_identifier(c)} = s.{quote_identifier(c)}" for c in id_columns
        )
        listed = ", ".join(map(quote_identifier, names))
        self.merge_sql = (
            f"DELETE FROM {self.target} AS t USING pg_temp.modelrail_stage AS s WHERE {match}",
            f"INSERT INTO {self.target} ({listed}) SELECT {listed} FROM pg_temp.modelrail_stage",
        )
        try:
            self.conn = psycopg.connect(sink.conninfo(), connect_timeout=10, autocommit=False)
        except psycopg.Error as exc:
            raise BatchOutputError(f"cannot connect to {sink.location}: {one_line(exc)}") from exc
        self.stream = CopyStream(self.conn, {"model": stamp.model, "batch_run_id": stamp.run_id})
        lock = int.from_bytes(hashlib.sha256(str(table).encode()).digest()[:8], "big", signed=True)
        with self._errors("locking"):
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            self.add_key: str | None = None
            if sink.creation is not None and self._missing():
                create, self.add_key = sink.creation
                self.conn.execute(create)
            elif sink.creation is not None:  # another run created it meanwhile
                sink.check_existing()
            had_rows = self.conn.execute(f"SELECT 1 FROM {self.target} LIMIT 1").fetchone()
            # A table that already has rows gets this run's rows through a temporary stage
            # (no WAL), merged in at the end by one set-wise delete and insert; an empty one
            # takes them straight from COPY.
            self.staged = had_rows is not None
            self.pg_types = self._column_types(names)
            if self.staged:
                self.conn.execute(
                    f"CREATE TEMP TABLE modelrail_stage (LIKE {self.target} INCLUDING DEFAULTS) "
                    "ON COMMIT DROP"
                )
            into = "pg_temp.modelrail_stage" if self.staged else self.target
            self.copy_sql = f"COPY {into} ({', '.join(map(quote_identifier, names))}) FROM STDIN"

    def write(self, scored: ScoredBatch, scored_at: float) -> None:
        output = scored.output
        with self._errors("writing"):
            if output.num_rows:
                stamped = pa.RecordBatch.from_arrays(
                    [*output.columns, *self.stamp.columns(output.num_rows, scored_at)],
                    names=self.names,
                )
                self.stream.write(self.copy_sql, stamped, self.pg_types)
            if scored.rejects is not None and scored.rejects.num_rows:
                rejects = scored.rejects
                when = self.stamp.columns(rejects.num_rows, scored_at)[-1]
                stamped = pa.RecordBatch.from_arrays(
                    [*rejects.columns, when], names=[*rejects.schema.names, "rejected_at"]
                )
                self.stream.write(self.copy_rejects_sql, stamped, None)

    def _missing(self) -> bool:
        found = self.conn.execute("SELECT to_regclass(%s)", (self.target,)).fetchone()
        return found is None or found[0] is None

    def _column_types(self, names: list[str]) -> list[str]:
        """Each column's PostgreSQL type (as the binary COPY format needs it)."""
        query = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s AND table_schema = coalesce(%s, current_schema())"
        )
        table = self.sink.table
        rows = self.conn.execute(query, (table.name, table.schema)).fetchall()
        found: dict[str, str] = {str(name): str(kind) for name, kind in rows}
        return [str(found.get(name, "")) for name in names]

    def parts_done(self) -> int | None:
        return None

    def commit(self, input_key: str) -> None:
        with self._errors("committing"):
            self.stream.end()
            if self.add_key is not None:
                self.conn.execute(self.add_key)
            if self.staged:
                for statement in self.merge_sql:
                    self.conn.execute(statement)
            self.conn.commit()
        self.conn.close()

    def abort(self) -> None:
        self.stream.cancel()
        try:
            self.conn.rollback()
        except self._psycopg_error:
            pass  # the server rolls back a transaction whose connection is gone
        finally:
            self.conn.close()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self._psycopg_error as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise BatchOutputError(
                f"{doing} {self.sink.location} failed: {'; '.join(lines)}; nothing was written"
            ) from exc


def _qualified(table: TableName) -> str:
    if table.schema:
        return f"{quote_identifier(table.schema)}.{quote_identifier(table.name)}"
    return quote_identifier(table.name)

"""PostgreSQL output: a whole run in one transaction of bulk ``COPY``s.

Writers of one table take an advisory lock, so two runs into the same table queue instead
of racing. Rows whose ids are already in the table are deleted in the same transaction
before their batch is copied in, so a re-run replaces them; the transaction makes the run
atomic, and a killed client's transaction is rolled back by the server.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from modelrail.batch.scorer import REJECT_SCHEMA, STAMP_FIELDS, RunStamp, ScoredBatch
from modelrail.batch.sinks.base import Checkpoint
from modelrail.batch.sinks.pg_binary import HEADER, TRAILER, binary_payload
from modelrail.batch.sinks.sql_tables import (
    TableName,
    create_or_check,
    one_line,
    output_table,
    quote_identifier,
    rejects_table,
)
from modelrail.errors import BatchOutputError


class PostgresSink:
    resumable = False
    atomic = True

    def __init__(self, url: URL, table: str | None) -> None:
        self.url = url.set(drivername="postgresql+psycopg")
        self.table = TableName.parse(table)
        shown = self.url.set(drivername="postgresql").render_as_string(hide_password=True)
        self.location = f"{shown} table {self.table}"
        self._schema: pa.Schema | None = None
        self._id_columns: tuple[str, ...] = ()

    def prepare(self, schema: pa.Schema, id_columns: tuple[str, ...], with_rejects: bool) -> None:
        try:
            engine = create_engine(self.url, connect_args={"connect_timeout": 10})
        except (ModuleNotFoundError, SQLAlchemyError) as exc:
            raise BatchOutputError(
                f"cannot write {self.location}: the PostgreSQL driver is missing "
                "(pip install 'modelrail[postgres]')"
            ) from exc
        try:
            metadata = MetaData()
            table = output_table(self.table, schema, id_columns, metadata)
            create_or_check(engine, table, id_columns, self.location)
            if with_rejects:
                rejects = rejects_table(self.table.rejects, metadata)
                create_or_check(engine, rejects, ("batch_run_id", "row_number"), self.location)
        finally:
            engine.dispose()
        self._schema = schema
        self._id_columns = id_columns
        self._pg_types = self._column_types([*schema.names, *(f.name for f in STAMP_FIELDS)])

    def _column_types(self, names: list[str]) -> list[str]:
        import psycopg

        query = (
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s AND table_schema = coalesce(%s, current_schema())"
        )
        try:
            with psycopg.connect(self.conninfo(), connect_timeout=10) as conn:
                found: dict[str, str] = dict(
                    conn.execute(query, (self.table.name, self.table.schema)).fetchall()
                )
        except psycopg.Error as exc:
            raise BatchOutputError(
                f"cannot read the columns of {self.location}: {one_line(exc)}"
            ) from exc
        return [str(found.get(name, "")) for name in names]

    def open(self, stamp: RunStamp, resume: Checkpoint | None) -> PostgresWriter:
        assert self._schema is not None, "prepare() first"
        return PostgresWriter(self, self._schema, self._id_columns, stamp, self._pg_types)

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
        pg_types: list[str],
    ) -> None:
        import psycopg

        self.sink = sink
        self.stamp = stamp
        self.id_columns = id_columns
        self.pg_types = pg_types
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
        lock = int.from_bytes(hashlib.sha256(str(table).encode()).digest()[:8], "big", signed=True)
        with self._errors("locking"):
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            had_rows = self.conn.execute(f"SELECT 1 FROM {self.target} LIMIT 1").fetchone()
            # A table that already has rows gets this run's rows through a temporary stage
            # (no WAL), merged in at the end by one set-wise delete and insert; an empty one
            # takes them straight from COPY.
            self.staged = had_rows is not None
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
                self._copy(self.copy_sql, stamped, self.pg_types)
            if scored.rejects is not None and scored.rejects.num_rows:
                rejects = scored.rejects
                when = self.stamp.columns(rejects.num_rows, scored_at)[-1]
                stamped = pa.RecordBatch.from_arrays(
                    [*rejects.columns, when], names=[*rejects.schema.names, "rejected_at"]
                )
                self._copy(self.copy_rejects_sql, stamped, None)

    def _copy(self, sql: str, batch: pa.RecordBatch, pg_types: list[str] | None) -> None:
        payload = binary_payload(batch, pg_types) if pg_types else None
        with self.conn.cursor() as cursor:
            if payload is not None:
                with cursor.copy(sql + " (FORMAT binary)") as copy:
                    copy.write(HEADER)
                    copy.write(payload)
                    copy.write(TRAILER)
                return
            buffer = io.BytesIO()
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            pacsv.write_csv(batch, buffer, write_options=options)
            with cursor.copy(sql + " (FORMAT csv)") as copy:
                copy.write(buffer.getbuffer())

    def parts_done(self) -> int | None:
        return None

    def commit(self, input_key: str) -> None:
        with self._errors("committing"):
            if self.staged:
                for statement in self.merge_sql:
                    self.conn.execute(statement)
            self.conn.commit()
        self.conn.close()

    def abort(self) -> None:
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

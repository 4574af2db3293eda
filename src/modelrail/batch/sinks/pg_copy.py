"""One ``COPY ... FROM STDIN`` kept open from batch to batch.

A COPY per batch makes the client wait at the end of each for the server to take in the
whole batch, so encoding the next batch and storing this one take turns. One stream across
batches lets them overlap (the server on one core, the client on the other); it is only
ended when a batch needs the other format or another table (rejects), and at commit.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from contextlib import ExitStack, suppress
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from modelrail.batch.sinks.pg_binary import HEADER, TRAILER, binary_payload

_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed")


class CopyStream:
    def __init__(self, conn: Any, constants: Mapping[str, str] | None = None) -> None:
        self.conn = conn
        self.constants = constants
        self._statement: str | None = None
        self._copy: Any = None
        self._open = ExitStack()

    def write(self, sql: str, batch: pa.RecordBatch, pg_types: list[str] | None) -> None:
        """Send ``batch`` to ``COPY table (columns) FROM STDIN`` (``sql``): binary where every
        column fits, else CSV."""
        payload = binary_payload(batch, pg_types, self.constants) if pg_types else None
        if payload is not None:
            self._stream(sql + " (FORMAT binary)").write(payload)
            return
        buffer = io.BytesIO()
        pacsv.write_csv(batch, buffer, write_options=_CSV)
        self._stream(sql + " (FORMAT csv)").write(buffer.getbuffer())

    def _stream(self, statement: str) -> Any:
        if statement == self._statement:
            return self._copy
        self.end()
        cursor = self._open.enter_context(self.conn.cursor())
        self._copy = self._open.enter_context(cursor.copy(statement))
        self._statement = statement
        if statement.endswith("(FORMAT binary)"):
            self._copy.write(HEADER)
        return self._copy

    def end(self) -> None:
        """Finish the open COPY: the server reports any error in its rows here."""
        if self._statement is None:
            return
        if self._statement.endswith("(FORMAT binary)"):
            self._copy.write(TRAILER)
        self._statement, self._copy = None, None
        self._open.close()

    def cancel(self) -> None:
        """Abandon the open COPY (the transaction is rolled back next)."""
        if self._statement is None:
            return
        self._statement, self._copy = None, None
        # Leaving the copy block with an exception makes psycopg send CopyFail; whatever the
        # server or a broken connection answers, the rollback that follows ends it all.
        with suppress(Exception):
            self._open.__exit__(RuntimeError, RuntimeError("batch run aborted"), None)
        self._open = ExitStack()

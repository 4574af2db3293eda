"""Statements on the per-run hot path, compiled once and run on the driver's cursor.

SQLAlchemy spends about 40 µs of bookkeeping on every execute; a run's life
(create, params, metrics, end) runs a dozen statements. These few keep their
single definition as Core statements, compiled once for the store's dialect,
and skip that bookkeeping. Every other query goes through SQLAlchemy as usual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


class FastStatement:
    def __init__(
        self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str] | None = None
    ) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        self.sql = str(compiled)
        # Values fixed in the statement itself, such as a LIMIT.
        self.fixed = {k: v for k, v in compiled.params.items() if v is not None}
        # qmark (SQLite) wants a tuple in order; pyformat (psycopg) wants the mapping.
        self.order: tuple[str, ...] | None = (
            tuple(positions) if (positions := getattr(compiled, "positiontup", None)) else None
        )

    def _args(self, params: Mapping[str, Any]) -> Any:
        if self.fixed:
            params = {**self.fixed, **params}
        return params if self.order is None else tuple(params[k] for k in self.order)

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        cursor = conn.connection.cursor()
        args = self._args(params)
        try:
            cursor.execute(self.sql, args)
        except Exception as exc:
            raise _translated(conn, self.sql, args, exc) from exc
        return cursor

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            cursor = conn.connection.cursor()
            args = [self._args(row) for row in rows]
            try:
                cursor.executemany(self.sql, args)
            except Exception as exc:
                raise _translated(conn, self.sql, args, exc) from exc
            finally:
                cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        cursor = self.execute(conn, params)
        row = cursor.fetchone()
        cursor.close()
        return None if row is None else tuple(row)


def _translated(conn: Connection, sql: str, args: Any, exc: Exception) -> Exception:
    """Driver errors as SQLAlchemy's own (IntegrityError, OperationalError, ...)."""
    dbapi = conn.dialect.loaded_dbapi
    if isinstance(exc, dbapi.Error):
        return DBAPIError.instance(sql, args, exc, dbapi.Error)
    return exc

"""Engine, transactions and schema migration for the metadata store.

SQLite runs in WAL mode and every write transaction starts with
``BEGIN IMMEDIATE``: SQLite cannot upgrade a read lock to a write lock while
another process writes (it fails at once instead of waiting), so taking the
write lock up front is what lets many processes share one file without losing
writes. PostgreSQL serialises the few read-then-write steps (labels, version
numbers) with transaction-scoped advisory locks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from modelrail.errors import StoreSchemaError, StoreUnavailableError, StoreURLError

HEAD_REVISION = "0005"
_MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_WRITE_OPTION = "modelrail_write"


def parse_store_url(raw: str) -> URL:
    """Parse a store URL, defaulting PostgreSQL to the psycopg 3 driver."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        shown = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", raw)
        raise StoreURLError(
            f"malformed store URL {shown!r}: expected e.g. sqlite:///path/to/modelrail.db "
            "or postgresql+psycopg://user@host/database"
        ) from exc
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg")
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreURLError(
            f"unsupported store URL {url.render_as_string(hide_password=True)!r}: "
            "modelrail stores metadata in SQLite or PostgreSQL"
        )
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        raise StoreURLError(
            f"store URL {url.render_as_string()!r} names no database file: "
            "an in-memory store would lose every run"
        )
    return url


class Database:
    """One engine plus the transaction helpers the repository uses."""

    def __init__(self, url: str) -> None:
        self.url = parse_store_url(url)
        self.display_url = self.url.render_as_string(hide_password=True)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = self._create_engine()
        self._ensure_schema()

    # -- engine ------------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if self.is_sqlite:
            database = Path(str(self.url.database))
            if not database.parent.is_dir():
                raise StoreUnavailableError(
                    f"cannot open store {self.display_url}: folder {database.parent} does not exist"
                )
            engine = create_engine(
                self.url,
                connect_args={"timeout": 60, "check_same_thread": False},
                # Every transaction ends in COMMIT or ROLLBACK already; skip the extra reset.
                pool_reset_on_return=None,
            )
            event.listen(engine, "connect", _configure_sqlite_connection)
            event.listen(engine, "begin", _begin_sqlite_transaction)
            return engine
        try:
            return create_engine(self.url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise StoreURLError(
                f"store {self.display_url} needs the PostgreSQL driver: "
                "pip install 'modelrail[postgres]'"
            ) from exc

    def dispose(self) -> None:
        self.engine.dispose()

    # -- transactions --------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._translate_errors(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any exception."""
        with self._translate_errors(), self.engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def lock(self, conn: Connection, key: str) -> None:
        """Serialise writers on ``key`` until the transaction ends."""
        if self.is_sqlite:
            return  # BEGIN IMMEDIATE already holds the database's only write lock.
        digest = hashlib.sha256(key.encode()).digest()
        lock_id = int.from_bytes(digest[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raw = str(exc.orig) if exc.orig is not None else str(exc)
            detail = "; ".join(line.strip() for line in raw.splitlines() if line.strip())
            raise StoreUnavailableError(f"store {self.display_url}: {detail}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailableError(f"store {self.display_url}: connection lost") from exc
            raise

    # -- schema ----------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        current = self._current_revision()
        if current == HEAD_REVISION:
            return
        with self.write() as conn:
            self.lock(conn, "modelrail:migrate")
            current = _read_revision(conn)
            if current == HEAD_REVISION:
                return
            if current is not None and not _is_known_revision(current):
                raise StoreSchemaError(
                    f"store {self.display_url} has schema revision {current!r}, which this "
                    "modelrail does not know: upgrade modelrail"
                )
            _run_migrations(conn)

    def _current_revision(self) -> str | None:
        with self.read() as conn:
            return _read_revision(conn)


def _read_revision(conn: Connection) -> str | None:
    try:
        with conn.begin_nested():
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except DBAPIError:
        return None
    return None if row is None else str(row[0])


def _is_known_revision(revision: str) -> bool:
    return any(p.name.startswith(f"{revision}_") for p in (_MIGRATIONS_DIR / "versions").iterdir())


def _run_migrations(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level so the "begin" hook below decides how to BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 60000")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _begin_sqlite_transaction(conn: Connection) -> None:
    if conn.get_execution_options().get(_WRITE_OPTION):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")

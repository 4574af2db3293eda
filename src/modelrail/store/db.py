"""Engine, transactions and schema migration for the metadata store.

SQLite runs in WAL mode and every write transaction starts with
``BEGIN IMMEDIATE``: SQLite cannot upgrade a read lock to a write lock while
another process writes (it fails at once instead of waiting), so taking the
write lock up front is what lets many processes share one file without losing
writes. PostgreSQL serialises the few read-then-write steps (labels, version
numbers) with transaction-scoped advisory locks.

On PostgreSQL the schema may belong to one role (the *owner*, which creates and
upgrades it) while the application connects as another (the *app role*) that can
read and write rows but owns nothing, so it cannot ``ALTER TABLE ... DISABLE
TRIGGER`` the append-only history. A role that does not own the schema never runs
migrations: a schema behind this modelrail is refused with a message that tells the
operator to upgrade it as the owner.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from modelrail.errors import (
    InvalidInputError,
    StoreSchemaError,
    StoreUnavailableError,
    StoreURLError,
)
from modelrail.urls import hide_password

_MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Revision files are named NNNN_what.py and numbered in order: the newest is the head.
_REVISIONS = frozenset(
    name[:4]
    for name in os.listdir(_MIGRATIONS_DIR / "versions")
    if re.fullmatch(r"\d{4}_\w+\.py", name)
)
HEAD_REVISION = max(_REVISIONS)
_WRITE_OPTION = "modelrail_write"
_SQLITE_WAIT_S = 60.0  # how long a writer waits for SQLite's write lock
# A team server's worker threads each hold a connection: keep that many open rather than
# connect (and configure) anew for every request beyond the default five. The most recently
# returned connection is handed out first: its caches are warm, and idle ones stay idle.
_SQLITE_POOL: dict[str, Any] = {"pool_size": 16, "max_overflow": 48, "pool_use_lifo": True}
_INSUFFICIENT_PRIVILEGE = "42501"  # PostgreSQL's SQLSTATE for "permission denied", "must be owner"
_OWNER_HINT = "the role that owns the schema runs 'modelrail init --store <URL of that role>"


def parse_store_url(raw: str) -> URL:
    """Parse a store URL, defaulting PostgreSQL to the psycopg 3 driver."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        shown = hide_password(raw)
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
        # SQLite lets one writer in at a time; threads of this process queue here for it
        # instead of in SQLite's busy handler, which sleeps and polls (see ``write``).
        self._writers = threading.RLock()
        self.engine = self._create_engine()
        try:
            self._ensure_schema()
        except BaseException:
            self.engine.dispose()  # a refused store leaves no connection behind
            raise

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
                connect_args={"timeout": _SQLITE_WAIT_S, "check_same_thread": False},
                # Every transaction ends in COMMIT or ROLLBACK already; skip the extra reset.
                pool_reset_on_return=None,
                **_SQLITE_POOL if str(database) not in ("", ":memory:") else {},
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
        """A write transaction: committed on success, rolled back on any exception.

        On SQLite, a thread waits for this process's other writers first (at most as long
        as SQLite itself would wait, after which SQLite's own lock decides), so threads
        take turns at once instead of polling; other processes still meet at SQLite's lock.
        """
        queued = self.is_sqlite and self._writers.acquire(timeout=_SQLITE_WAIT_S)
        try:
            with self._writing() as conn:
                yield conn
        finally:
            if queued:
                self._writers.release()

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
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
            if getattr(exc.orig, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE:
                role = self.url.username or "the connecting role"
                detail = str(exc.orig).splitlines()[0]
                raise StoreUnavailableError(
                    f"store {self.display_url}: {detail} (role {role!r}): if this is the "
                    f"application role, {_OWNER_HINT} --app-role {role}'"
                ) from exc
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
            if current is not None and current not in _REVISIONS:
                raise StoreSchemaError(
                    f"store {self.display_url} has schema revision {current!r}, which this "
                    "modelrail does not know: upgrade modelrail"
                )
            if self.is_sqlite:
                _run_migrations(conn)
                return
            _refuse_upgrade_by_non_owner(conn, current, self.display_url)
            app_roles = conn.execute(_APP_ROLES).scalars().all()
            _run_migrations(conn)
            # Tables a migration added (and tables it made append-only) get their grants.
            for role in app_roles:
                _grant_app_role(conn, role)

    def _current_revision(self) -> str | None:
        with self.read() as conn:
            return _read_revision(conn)

    # -- owner and application roles (PostgreSQL) ------------------------------------

    def grant_app_role(self, role: str) -> AppRoleGrants:
        """Let ``role`` use this store without owning any of it.

        The caller connects as the schema's owner. ``role`` gets USAGE on the schema,
        SELECT, INSERT, UPDATE and DELETE on the tables, only SELECT and INSERT on the
        append-only ones, only SELECT on ``alembic_version``, and the sequences the
        inserts need. Default privileges give it the tables of later migrations too,
        and every upgrade grants them again, so append-only tables stay append-only.
        """
        if self.is_sqlite:
            raise InvalidInputError(
                f"app role {role!r}: store {self.display_url} is SQLite, which has no roles; "
                "a separate application role needs a PostgreSQL store"
            )
        with self.write() as conn:
            self.lock(conn, "modelrail:migrate")
            me, _, owner, may_grant = conn.execute(_OWNERSHIP).one()
            if not may_grant:
                raise InvalidInputError(
                    f"role {me!r} does not own the modelrail tables of store "
                    f"{self.display_url} (role {owner!r} does), so it cannot grant "
                    f"{role!r} access to them: connect as {owner!r}"
                )
            found = conn.execute(_ROLE, {"role": role, "owner": owner}).first()
            if found is None:
                quoted = conn.dialect.identifier_preparer.quote(role)
                raise InvalidInputError(
                    f"app role {role!r} does not exist on store {self.display_url}: "
                    f"create it first, e.g. CREATE ROLE {quoted} LOGIN"
                )
            if found.owns:
                what = (
                    "is a superuser"
                    if found.superuser
                    else "owns the modelrail tables"
                    if role == owner
                    else f"is a member of {owner!r}, which owns the modelrail tables"
                )
                raise InvalidInputError(
                    f"app role {role!r} {what} of store {self.display_url}, so it could "
                    "still disable the history's triggers: the application needs a role of "
                    "its own that owns nothing"
                )
            return _grant_app_role(conn, role)


@dataclass(frozen=True)
class AppRoleGrants:
    """What the application role may do, table by table."""

    role: str
    schema: str
    read_write: tuple[str, ...]
    append_only: tuple[str, ...]
    read_only: tuple[str, ...]


# Who is connected, where its tables go, and whether it owns (or may create) the schema.
_MAY_MIGRATE = text(
    """SELECT current_user AS me, current_schema() AS schema,
       current_setting('search_path') AS search_path, c.oid IS NOT NULL AS has_tables,
       COALESCE(pg_has_role(c.relowner, 'USAGE'), false) AS owns,
       COALESCE(has_schema_privilege(current_schema(), 'CREATE'), false) AS may_create
    FROM (SELECT 1) AS one LEFT JOIN pg_class AS c ON c.oid = to_regclass('alembic_version')"""
)
_OWNERSHIP = text(
    """SELECT current_user AS me, current_schema() AS schema, pg_get_userbyid(relowner) AS owner,
    pg_has_role(relowner, 'USAGE') AS may_grant
    FROM pg_class WHERE oid = to_regclass('alembic_version')"""
)
# MEMBER, not USAGE: a member without INHERIT can still SET ROLE to the owner.
_ROLE = text(
    """SELECT rolsuper AS superuser, rolsuper OR pg_has_role(oid, :owner, 'MEMBER') AS owns
    FROM pg_roles WHERE rolname = :role"""
)
# The application roles: those the owner's default privileges let insert into new tables.
_APP_ROLES = text(
    """SELECT DISTINCT pg_get_userbyid(a.grantee)
    FROM pg_default_acl AS d CROSS JOIN LATERAL aclexplode(d.defaclacl) AS a
    JOIN pg_class AS c ON c.oid = to_regclass('alembic_version')
    WHERE d.defaclrole = c.relowner AND d.defaclobjtype = 'r'
      AND d.defaclnamespace = current_schema()::regnamespace
      AND a.privilege_type = 'INSERT' AND a.grantee <> 0"""
)
_SCHEMA_TABLES = text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
# A table is append-only when a modelrail_append_only... trigger function guards it.
_APPEND_ONLY_TABLES = text(
    r"""SELECT DISTINCT c.relname FROM pg_trigger AS t
    JOIN pg_class AS c ON c.oid = t.tgrelid JOIN pg_proc AS p ON p.oid = t.tgfoid
    WHERE c.relnamespace = current_schema()::regnamespace
      AND p.proname LIKE 'modelrail\_append\_only%'"""
)
_SEQUENCES = text(
    """SELECT DISTINCT s.relname FROM pg_depend AS d
    JOIN pg_class AS s ON s.oid = d.objid JOIN pg_class AS t ON t.oid = d.refobjid
    WHERE s.relkind = 'S' AND d.classid = 'pg_class'::regclass
      AND d.refclassid = 'pg_class'::regclass
      AND t.relnamespace = current_schema()::regnamespace
      AND t.relname::text = ANY(CAST(:tables AS text[]))"""
)


def _refuse_upgrade_by_non_owner(conn: Connection, current: str | None, store: str) -> None:
    """Only the schema's owner creates or upgrades it; anyone else gets told who must."""
    found = conn.execute(_MAY_MIGRATE).one()
    if found.owns or (not found.has_tables and found.may_create):
        return
    grant = f"{_OWNER_HINT} --app-role {found.me}'"
    if current is not None:
        message = (
            f"store {store} has schema revision {current!r} and this modelrail needs "
            f"{HEAD_REVISION!r}; role {found.me!r} does not own the schema, so it cannot "
            f"upgrade it: {_OWNER_HINT}' to upgrade it"
        )
    elif found.schema is None:
        message = (
            f"store {store}: role {found.me!r} may not use any schema on its search_path "
            f"({found.search_path}), so it finds no modelrail tables: {grant} to create "
            f"them and grant {found.me!r} access"
        )
    elif found.has_tables:
        message = (
            f"role {found.me!r} may not read the modelrail tables in schema {found.schema!r} "
            f"of store {store}: {grant} to grant it access"
        )
    else:
        message = (
            f"store {store} has no modelrail tables in schema {found.schema!r}, and role "
            f"{found.me!r} may not create them: {grant} to create them and grant "
            f"{found.me!r} access"
        )
    raise StoreSchemaError(message)


def _grant_app_role(conn: Connection, role: str) -> AppRoleGrants:
    from modelrail.store.tables import metadata

    quote = conn.dialect.identifier_preparer.quote_identifier
    _, schema, owner, _ = conn.execute(_OWNERSHIP).one()
    in_schema = set(conn.execute(_SCHEMA_TABLES).scalars())
    tables = sorted(in_schema & {*metadata.tables, "alembic_version"})
    append_only = set(conn.execute(_APPEND_ONLY_TABLES).scalars())
    grantee, namespace = quote(role), quote(schema)
    statements = [f"GRANT USAGE ON SCHEMA {namespace} TO {grantee}"]
    for table in tables:
        if table == "alembic_version":
            privileges = "SELECT"  # the app reads the revision; only the owner moves it
        elif table in append_only:
            privileges = "SELECT, INSERT"
        else:
            privileges = "SELECT, INSERT, UPDATE, DELETE"
        statements.append(f"REVOKE ALL ON TABLE {namespace}.{quote(table)} FROM {grantee}")
        statements.append(f"GRANT {privileges} ON TABLE {namespace}.{quote(table)} TO {grantee}")
    for sequence in conn.execute(_SEQUENCES, {"tables": tables}).scalars():
        target = f"SEQUENCE {namespace}.{quote(sequence)}"
        statements.append(f"REVOKE ALL ON {target} FROM {grantee}")
        statements.append(f"GRANT USAGE, SELECT ON {target} TO {grantee}")
    defaults = f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(owner)} IN SCHEMA {namespace} GRANT"
    statements.append(f"{defaults} SELECT, INSERT, UPDATE, DELETE ON TABLES TO {grantee}")
    statements.append(f"{defaults} USAGE, SELECT ON SEQUENCES TO {grantee}")
    for statement in statements:
        conn.exec_driver_sql(statement)
    return AppRoleGrants(
        role=role,
        schema=schema,
        read_write=tuple(t for t in tables if t != "alembic_version" and t not in append_only),
        append_only=tuple(t for t in tables if t in append_only),
        read_only=("alembic_version",),
    )


def _read_revision(conn: Connection) -> str | None:
    try:
        with conn.begin_nested():
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    except DBAPIError:
        return None
    return None if row is None else str(row[0])


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
    # On the driver's connection: SQLAlchemy's execute would cost more than the BEGIN itself,
    # once for every transaction.
    begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "BEGIN"
    driver = conn.connection.dbapi_connection
    assert driver is not None
    try:
        driver.execute(begin)
    except conn.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy's own, e.g. "locked"
        raise DBAPIError.instance(begin, (), exc, conn.dialect.loaded_dbapi.Error) from exc

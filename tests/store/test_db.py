"""Opening stores: URLs, unreachable servers, migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from modelrail.errors import StoreSchemaError, StoreUnavailableError, StoreURLError
from modelrail.store.db import HEAD_REVISION, Database


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "mysql://root@localhost/x",
        "sqlite://",
        "sqlite:///:memory:",
        "://x",
        "postgresql://u:secret@host:port/db",
    ],
)
def test_malformed_or_unsupported_store_url_is_named(url: str) -> None:
    with pytest.raises(StoreURLError, match="store URL"):
        Database(url)


def test_unreachable_postgres_names_the_server() -> None:
    with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1:1/"):
        Database("postgresql://nobody@127.0.0.1:1/nothing")


def test_sqlite_in_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        Database(f"sqlite:///{tmp_path}/missing/modelrail.db")


def test_new_store_is_migrated_to_head_and_reopening_is_a_no_op(store_url: str) -> None:
    first = Database(store_url)
    with first.read() as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        tables = set(inspect(conn).get_table_names())
    first.dispose()
    assert revision == HEAD_REVISION
    assert {"runs", "run_metrics", "component_versions", "model_versions"} <= tables
    Database(store_url).dispose()


def test_sqlite_store_uses_write_ahead_logging(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/m.db")
    with db.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    db.dispose()


def test_store_from_a_newer_modelrail_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    Database(url).dispose()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreSchemaError, match="9999"):
        Database(url)


def test_migrations_build_exactly_the_schema_the_code_expects(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from modelrail.store.tables import metadata

    db = Database(store_url)
    with db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    db.dispose()
    assert differences == []

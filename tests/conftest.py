"""Shared fixtures: a fresh project per test, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from modelrail.client import Client
from modelrail.config import init_project, load_settings

POSTGRES_URL = os.environ.get("MODELRAIL_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("MODELRAIL_TEST_REQUIRE_POSTGRES") == "1"
_postgres_tests_run = 0


@pytest.fixture(autouse=True)
def _quick_predictor_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a version builds, verifies and times its predictor forms. Tests keep all
    of it (every form is still built and verified on the full sample, and the fastest
    chosen) but time each over a few calls on a small batch: hundreds of registrations
    would otherwise spend most of their time measuring."""
    from modelrail.scoring.forms import build, timing

    monkeypatch.setattr(timing, "ONE_ROW_BUDGET_S", 0.005)
    monkeypatch.setattr(timing, "BATCH_BUDGET_S", 0.005)
    monkeypatch.setattr(build, "BATCH_ROWS", 2_000)


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_URL:
        return f"modelrail: PostgreSQL store tests run against {make_url(POSTGRES_URL)!r}"
    return (
        "modelrail: PostgreSQL store tests are SKIPPED: set MODELRAIL_TEST_POSTGRES_URL "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run them"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI must not pass with the PostgreSQL variants silently skipped.
    if REQUIRE_POSTGRES and _postgres_tests_run == 0 and exitstatus == 0:
        session.exitstatus = 1
        print("\nmodelrail: MODELRAIL_TEST_REQUIRE_POSTGRES=1 but no PostgreSQL test ran")


def postgres_schema_url(base: str) -> Iterator[str]:
    """A throw-away schema on the test server, dropped afterwards."""
    global _postgres_tests_run
    schema = f"mr_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    _postgres_tests_run += 1
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from store_url_of(request.param, tmp_path)


def store_url_of(kind: str, root: Path) -> Iterator[str]:
    """A fresh store: ``sqlite`` in a project at ``root``, or ``postgres``, a schema of its own
    on the test server (dropped afterwards; skipped without one unless it is required)."""
    if kind == "sqlite":
        init_project(root)
        yield f"sqlite:///{root / '.modelrail' / 'modelrail.db'}"
        return
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail(
                "MODELRAIL_TEST_REQUIRE_POSTGRES=1 but MODELRAIL_TEST_POSTGRES_URL is unset"
            )
        pytest.skip("set MODELRAIL_TEST_POSTGRES_URL to run the PostgreSQL variant")
    yield from postgres_schema_url(POSTGRES_URL)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    init_project(tmp_path)
    return tmp_path


@pytest.fixture
def client(store_url: str, tmp_path: Path) -> Iterator[Client]:
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(store_url=store_url, settings=settings, user="tester") as made:
        yield made


@pytest.fixture
def sqlite_client(project: Path) -> Iterator[Client]:
    settings = load_settings(cwd=project, environ={}, create=False)
    with Client(settings=settings, user="tester") as made:
        yield made


# -- object storage: a real S3 server (moto's) on 127.0.0.1 --------------------------------

S3_BUCKET = "team-bucket"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Credentials and endpoint as a user sets them for MinIO; an empty bucket
    ``S3_BUCKET``. Yields pyarrow's file system on it."""
    import pyarrow.fs as pafs

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "modelrail-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "modelrail-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    filesystem, _ = pafs.FileSystem.from_uri(f"s3://{S3_BUCKET}?allow_bucket_creation=true")
    filesystem.create_dir(S3_BUCKET)
    yield filesystem
    filesystem.delete_dir_contents(S3_BUCKET, missing_dir_ok=True)

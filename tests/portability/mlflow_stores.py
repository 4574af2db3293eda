"""MLflow tracking stores written by a real MLflow 3, for the import tests.

MLflow lives in its own virtualenv (``tools/mlflow_env.py``, built once), never in .venv.
Once per session, four stores are written at the same time by ``mlflow_writer.py``: an
SQLite backend, a file store (``mlruns``), a PostgreSQL backend (a fresh database on the
test server) and an SQLite backend behind a running ``mlflow server`` on 127.0.0.1, which
the tests read through its REST API and which is stopped when the session ends.

Without MLflow (it cannot be installed here) the tests are skipped, and fail instead when
``MODELRAIL_TEST_REQUIRE_MLFLOW=1`` (CI sets it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES

ROOT = Path(__file__).resolve().parents[2]
WRITER = Path(__file__).with_name("mlflow_writer.py")
REQUIRE_MLFLOW = os.environ.get("MODELRAIL_TEST_REQUIRE_MLFLOW") == "1"
KINDS = ("sqlite", "files", "server", "postgres")
WRITE_TIMEOUT_S = 300


@dataclass(frozen=True)
class MlflowStore:
    kind: str
    source: str  # what a user gives `modelrail import-mlflow`
    written: dict[str, Any]  # what the writer says it wrote (run ids, predictions ...)
    folder: Path


def unavailable(reason: str) -> None:
    if REQUIRE_MLFLOW:
        pytest.fail(f"{reason} (MODELRAIL_TEST_REQUIRE_MLFLOW=1)", pytrace=False)
    pytest.skip(f"{reason}; set MODELRAIL_TEST_REQUIRE_MLFLOW=1 to make this a failure")


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mlflow_env.py")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if done.returncode != 0:
        unavailable(f"MLflow 3 could not be installed: {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def mlflow_env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELRAIL_"))}
    return {**clean, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ALLOW_FILE_STORE": "true"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(python: Path, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [str(python.parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--workers", "1"]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    with (folder / "server.log").open("wb") as log:  # the server keeps its own handle
        server = subprocess.Popen(
            command,
            cwd=folder,
            env=mlflow_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.3)
    stop(server)
    log_text = (folder / "server.log").read_text()[-2000:]
    raise RuntimeError(f"mlflow server did not start: {log_text}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def mlflow_stores(
    mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, MlflowStore]]:
    """Every kind of store, written at once (the writers run in parallel; the server starts
    while the others write)."""
    folders = {kind: tmp_path_factory.mktemp(f"mlflow-{kind}") for kind in KINDS}
    database = f"mlflow_{uuid.uuid4().hex[:12]}" if POSTGRES_URL else None
    targets = {
        "sqlite": (f"sqlite:///{folders['sqlite'] / 'mlflow.db'}", folders["sqlite"] / "a"),
        "files": (f"file://{folders['files'] / 'mlruns'}", "-"),
    }
    writers: dict[str, subprocess.Popen[bytes]] = {}
    server: subprocess.Popen[bytes] | None = None

    def write(kind: str) -> None:
        uri, artifacts = targets[kind]
        writers[kind] = subprocess.Popen(
            [str(mlflow_python), str(WRITER), uri, str(artifacts), "written.json"],
            cwd=folders[kind],
            env=mlflow_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    try:
        if database is not None:
            _create_database(database)
            url = make_url(POSTGRES_URL or "").set(database=database)
            pg = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
            targets["postgres"] = (pg, folders["postgres"] / "a")
        for kind in list(targets):
            write(kind)
        server, server_url = start_server(mlflow_python, folders["server"])
        targets["server"] = (server_url, "-")
        write("server")
        stores = {}
        for kind, writer in writers.items():
            output, _ = writer.communicate(timeout=WRITE_TIMEOUT_S)
            assert writer.returncode == 0, output.decode()[-3000:]
            written = json.loads((folders[kind] / "written.json").read_text())
            source = targets[kind][0]
            if kind == "files":
                source = str(folders["files"] / "mlruns")
            if kind == "postgres":
                source = make_url(source).set(drivername="postgresql").render_as_string(False)
            stores[kind] = MlflowStore(kind, source, written, folders[kind])
        yield stores
    finally:
        for writer in writers.values():
            if writer.poll() is None:
                writer.kill()
                writer.communicate()
        if server is not None:
            stop(server)
        if database is not None:
            _drop_database(database)


def _create_database(name: str) -> None:
    engine = create_engine(POSTGRES_URL or "", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def _drop_database(name: str) -> None:
    engine = create_engine(POSTGRES_URL or "", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def store_of(stores: dict[str, MlflowStore], kind: str) -> MlflowStore:
    """The store of ``kind``; the PostgreSQL one needs the test server."""
    if kind == "postgres" and kind not in stores:
        if REQUIRE_POSTGRES:
            pytest.fail(
                "MODELRAIL_TEST_REQUIRE_POSTGRES=1 but MODELRAIL_TEST_POSTGRES_URL is unset"
            )
        pytest.skip("set MODELRAIL_TEST_POSTGRES_URL to read an MLflow PostgreSQL backend")
    return stores[kind]

"""Fixtures of the batch runner, sink, kill/resume and CLI tests: a project holding small
fitted models and their input data, and one output of each kind (a SQLite file, a schema on
the PostgreSQL test server, a Parquet folder, a Redis key prefix), each read back the way a
user would read it.

Everything here is named so that it cannot shadow a fixture of ``tests/conftest.py`` or of
another batch test module. ``tests/cli/test_batch_cli.py`` imports the plain helpers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from modelrail.batch.runner import run_batch
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import BatchRun, ModelVersion
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, postgres_schema_url

BINARY = "churn"  # versions 1 and 2: two logistic regressions that disagree on many rows
MULTI = "tier"  # one version: three classes with text labels
FEATURES = ("f0", "f1", "f2", "f3")
ROWS = 300
REDIS_URL = os.environ.get("MODELRAIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("MODELRAIL_TEST_REQUIRE_REDIS") == "1"
OUTPUT_COLUMNS = ("prediction", "model", "model_version", "batch_run_id", "scored_at")


# -- models and data ---------------------------------------------------------------------


@dataclass(frozen=True)
class Models:
    """Fitted once per session; ``frame`` is the input every test scores."""

    binary_v1: LogisticRegression
    binary_v2: LogisticRegression
    multi: LogisticRegression
    train: pd.DataFrame
    frame: pd.DataFrame


def input_frame(rows: int = ROWS, seed: int = 7) -> pd.DataFrame:
    """Ids of three kinds (an integer, a text, and a pair) beside the model's inputs."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=list(FEATURES))
    frame.insert(0, "id", np.arange(1000, 1000 + rows, dtype=np.int64))
    frame.insert(1, "customer", [f"cust-{i:05d}" for i in range(rows)])
    frame.insert(2, "region", [("north", "south", "east")[i % 3] for i in range(rows)])
    frame.insert(3, "seq", np.arange(rows, dtype=np.int64) // 3)
    return frame


def fit_models() -> Models:
    rng = np.random.default_rng(3)
    train = pd.DataFrame(rng.normal(size=(400, len(FEATURES))), columns=list(FEATURES))
    positive = (train["f0"] + train["f1"] > 0).astype(int)
    v1 = LogisticRegression().fit(train, positive)
    v2 = LogisticRegression().fit(train, 1 - positive)  # disagrees with v1 on every clear row
    tiers = np.where(train["f2"] < -0.4, "low", np.where(train["f2"] > 0.4, "high", "mid"))
    multi = LogisticRegression(max_iter=500).fit(train, tiers)
    return Models(v1, v2, multi, train, input_frame())


@pytest.fixture(scope="session")
def batch_models() -> Models:
    return fit_models()


def expected_predictions(model: Any, frame: pd.DataFrame) -> dict[Any, Any]:
    return dict(zip(frame["id"], model.predict(frame[list(FEATURES)]), strict=True))


# -- a project with the models registered ------------------------------------------------


@dataclass
class ScoringProject:
    """A project whose store holds ``churn`` 1 and 2 and ``tier`` 1; files under ``root``."""

    root: Path
    client: Client
    models: Models
    versions: dict[str, ModelVersion] = field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        return self.models.frame

    def parquet(self, name: str = "input.parquet", frame: pd.DataFrame | None = None) -> str:
        path = self.root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(self.frame if frame is None else frame, preserve_index=False)
        pq.write_table(table, path, row_group_size=64)
        return str(path)

    def csv(self, name: str = "input.csv", frame: pd.DataFrame | None = None) -> str:
        path = self.root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (self.frame if frame is None else frame).to_csv(path, index=False)
        return str(path)

    def sqlite_input(self, frame: pd.DataFrame | None = None) -> str:
        """The frame as table ``customers`` of a SQLite file; returns the URL to query."""
        path = self.root / "data" / "input.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            (self.frame if frame is None else frame).to_sql("customers", conn, index=False)
        conn.close()
        return f"sqlite:///{path}"

    def spec(self, output: Output, *, reference: str = f"{BINARY}:1", **values: Any) -> JobSpec:
        values.setdefault("id_columns", ("id",))
        if "inputs" not in values and "query" not in values:
            values["inputs"] = (self.parquet(),)
        values.setdefault("table", output.table)
        return JobSpec(reference=reference, output=output.url, **values)

    def run(self, spec: JobSpec) -> BatchRun:
        return run_batch(self.client, spec)


def register_models(client: Client, models: Models) -> dict[str, ModelVersion]:
    example = models.train[:5]
    versions = {}
    for key, name, model in (
        ("churn:1", BINARY, models.binary_v1),
        ("churn:2", BINARY, models.binary_v2),
        ("tier:1", MULTI, models.multi),
    ):
        with client.start_run("batch-tests") as run:
            versions[key] = run.log_model(model, name=name, input_example=example)
    return versions


def open_project(root: Path, models: Models, store_url: str | None = None) -> ScoringProject:
    init_project(root)
    settings = load_settings(cwd=root, environ={}, create=False)
    client = Client(store_url=store_url, settings=settings, user="tester")
    project = ScoringProject(root, client, models)
    project.versions = register_models(client, models)
    return project


@pytest.fixture
def scoring(tmp_path: Path, batch_models: Models) -> Iterator[ScoringProject]:
    """A project on a SQLite store."""
    project = open_project(tmp_path, batch_models)
    yield project
    project.client.close()


@pytest.fixture
def scoring_on_each_store(
    client: Client, tmp_path: Path, batch_models: Models
) -> Iterator[ScoringProject]:
    """A project whose store is SQLite, then PostgreSQL (``client`` is parametrized)."""
    project = ScoringProject(tmp_path, client, batch_models)
    project.versions = register_models(client, batch_models)
    yield project


# -- outputs, read back as a user reads them -------------------------------------------------


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime), value
    if value.tzinfo is None:  # SQLite text, or a table declared without time zone: UTC
        value = value.replace(tzinfo=dt.UTC)
    return float(value.timestamp())


class Output:
    """One output of a batch job. ``rows`` holds every visible output row (``scored_at`` as
    epoch seconds); ``rejects`` the rows set aside (row_number, row_id, reason, run id)."""

    kind = ""
    url = ""
    table: str | None = None

    def rows(self, ids: Sequence[str] = ("id",)) -> list[dict[str, Any]]:
        raise NotImplementedError

    def rejects(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def has_table(self, name: str) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        return None


class SQLiteOutput(Output):
    kind = "sqlite"

    def __init__(self, root: Path, table: str = "scores") -> None:
        self.path = root / "scores.db"
        self.url = "sqlite:///scores.db"  # relative to the project, as users write it
        self.table = table

    def query(self, sql: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(self.path)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql)]
        finally:
            conn.close()

    def has_table(self, name: str) -> bool:
        found = self.query(f"SELECT name FROM sqlite_master WHERE type='table' AND name='{name}'")
        return bool(found)

    def rows(self, ids: Sequence[str] = ("id",)) -> list[dict[str, Any]]:
        if not self.has_table(str(self.table)):
            return []
        rows = self.query(f'SELECT * FROM "{self.table}"')
        return [{**row, "scored_at": _epoch(row["scored_at"])} for row in rows]

    def rejects(self) -> list[dict[str, Any]]:
        if not self.has_table(f"{self.table}_rejects"):
            return []
        return self.query(f'SELECT * FROM "{self.table}_rejects"')

    def execute(self, *statements: str) -> None:
        conn = sqlite3.connect(self.path)
        try:
            for statement in statements:
                conn.execute(statement)
            conn.commit()
        finally:
            conn.close()


def postgres_base_url() -> str:
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail(
                "MODELRAIL_TEST_REQUIRE_POSTGRES=1 but MODELRAIL_TEST_POSTGRES_URL is unset"
            )
        pytest.skip("set MODELRAIL_TEST_POSTGRES_URL to run the PostgreSQL variant")
    return POSTGRES_URL


class PostgresOutput(Output):
    """Table ``scores`` in a schema of its own on the test server, dropped afterwards."""

    kind = "postgres"

    def __init__(self) -> None:
        base = postgres_base_url()
        self._schema_url = postgres_schema_url(base)
        scoped = make_url(next(self._schema_url))
        self.schema = str(scoped.query["options"]).split("=", 1)[1]
        self.url = base
        self.table = f"{self.schema}.scores"
        self.conninfo = make_url(base).set(drivername="postgresql").render_as_string(False)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(self.conninfo, row_factory=dict_row) as conn:
            return list(conn.execute(sql, params).fetchall())

    def has_table(self, name: str) -> bool:
        found = self.query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (self.schema, name),
        )
        return bool(found)

    def rows(self, ids: Sequence[str] = ("id",)) -> list[dict[str, Any]]:
        if not self.has_table("scores"):
            return []
        rows = self.query(f'SELECT * FROM "{self.schema}".scores')
        return [{**row, "scored_at": _epoch(row["scored_at"])} for row in rows]

    def rejects(self) -> list[dict[str, Any]]:
        if not self.has_table("scores_rejects"):
            return []
        return self.query(f'SELECT * FROM "{self.schema}".scores_rejects')

    def execute(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo) as conn:
            for statement in statements:
                conn.execute(statement.replace("{schema}", self.schema))

    def close(self) -> None:
        next(self._schema_url, None)  # runs the generator's cleanup: drops the schema


class ParquetOutput(Output):
    kind = "parquet"

    def __init__(self, root: Path) -> None:
        self.folder = root / "scores"
        self.url = "scores"  # a folder relative to the project

    def rows(self, ids: Sequence[str] = ("id",)) -> list[dict[str, Any]]:
        """The dataset as pyarrow reads a folder: hidden and _-prefixed names skipped."""
        if not list(self.partition_files()):
            return []
        table = pq.read_table(self.folder).drop_columns(["input"])
        return [{**row, "scored_at": _epoch(row["scored_at"])} for row in table.to_pylist()]

    def partition_files(self) -> list[Path]:
        return sorted(self.folder.glob("input=*/*.parquet"))

    def rejects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for part in sorted(self.folder.glob("_rejects/run=*/*.parquet")):
            found.extend(pq.read_table(part).to_pylist())
        return found

    def unpublished(self) -> list[str]:
        """What the folder holds besides the dataset and its rejects: the run folders that no
        partition shows (``.runs/RUN``, a run still being written or left behind) and any
        other hidden name."""
        published = {p.readlink().name for p in self.folder.glob("input=*") if p.is_symlink()}
        runs = self.folder / ".runs"
        left = [f".runs/{p.name}" for p in runs.glob("*") if p.name not in published]
        return sorted([*left, *(p.name for p in self.folder.glob(".*") if p != runs)])


class RedisOutput(Output):
    """Keys ``PREFIX:ID`` on the test Redis, under a prefix of their own, deleted afterwards."""

    kind = "redis"

    def __init__(self) -> None:
        import redis

        self.redis = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            self.redis.close()
            if REQUIRE_REDIS:
                pytest.fail(f"MODELRAIL_TEST_REQUIRE_REDIS=1 but {REDIS_URL} is unreachable: {exc}")
            pytest.skip(f"no Redis at {REDIS_URL} (set MODELRAIL_TEST_REDIS_URL): {exc}")
        self.url = REDIS_URL
        self.prefix = f"mrtest-{uuid.uuid4().hex[:10]}"
        self.table = self.prefix

    def keys(self) -> list[str]:
        return sorted(k.decode() for k in self.redis.scan_iter(f"{self.prefix}:*", count=1000))

    def rows(self, ids: Sequence[str] = ("id",)) -> list[dict[str, Any]]:
        keys = [k for k in self.keys() if not k.startswith(f"{self.prefix}:rejects:")]
        if not keys:
            return []
        found = []
        for key, value in zip(keys, self.redis.mget(keys), strict=True):
            assert value is not None, key
            parts = key[len(self.prefix) + 1 :].split(":")
            row = dict(zip(ids, parts, strict=True))
            row.update(json.loads(value))
            found.append(row)
        return found

    def rejects(self) -> list[dict[str, Any]]:
        found = []
        for key in self.keys():
            if not key.startswith(f"{self.prefix}:rejects:"):
                continue
            run_id = key.rsplit(":", 1)[1]
            for number, value in self.redis.hgetall(key).items():
                detail = json.loads(value)
                found.append({"batch_run_id": run_id, "row_number": int(number), **detail})
        return found

    def close(self) -> None:
        keys = self.keys()
        if keys:
            self.redis.delete(*keys)
        self.redis.close()


OUTPUT_KINDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    "parquet",
    "redis",
]


def make_output(kind: str, root: Path) -> Output:
    if kind == "sqlite":
        return SQLiteOutput(root)
    if kind == "postgres":
        return PostgresOutput()
    if kind == "parquet":
        return ParquetOutput(root)
    if kind == "redis":
        return RedisOutput()
    raise AssertionError(kind)


@pytest.fixture(params=OUTPUT_KINDS)
def batch_output(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Output]:
    """Each kind of output in turn, empty."""
    made = make_output(str(request.param), tmp_path)
    yield made
    made.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_output(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Output]:
    """A SQLite, then a PostgreSQL output table."""
    made = make_output(str(request.param), tmp_path)
    yield made
    made.close()


def by_id(rows: list[dict[str, Any]], ids: Sequence[str] = ("id",)) -> dict[Any, dict[str, Any]]:
    """Rows keyed by their id (as text, so Redis keys compare with SQL values)."""
    keyed = {}
    for row in rows:
        key = ":".join(str(row[c]) for c in ids)
        assert key not in keyed, f"id {key} is in the output twice"
        keyed[key] = row
    return keyed


# -- the command line, in this process ------------------------------------------------------


@dataclass(frozen=True)
class CliOutcome:
    code: int
    stdout: str
    stderr: str


def modelrail_cli(
    monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> CliOutcome:
    """``modelrail ARGS`` run in ``cwd`` as its console script runs it (errors become one line
    and an exit code there), with stdout and stderr captured and no MODELRAIL_* variables."""
    from modelrail.cli import main

    with monkeypatch.context() as patch:
        patch.chdir(cwd)
        for name in list(os.environ):
            if name.startswith("MODELRAIL_"):
                patch.delenv(name)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        patch.setattr(sys, "argv", ["modelrail", *args])
        with CliRunner().isolation() as (out, err, _):
            try:
                main.run()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            sys.stdout.flush()
            sys.stderr.flush()
            stdout = out.getvalue().decode()
            stderr = err.getvalue().decode()
    return CliOutcome(code, stdout, stderr)

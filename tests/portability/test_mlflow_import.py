"""modelrail import-mlflow against stores a real MLflow 3 wrote: an SQLite backend, a file
store, a PostgreSQL backend and a running MLflow server (tests/portability/mlflow_stores.py)."""

from __future__ import annotations

import http.server
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelrail.client import Client
from modelrail.errors import InvalidInputError, MlflowSourceError
from modelrail.portability.mlflow_import import MlflowImportSummary
from tests.portability.mlflow_stores import MlflowStore, store_of

pytestmark = pytest.mark.timeout(1500)  # the first test builds MLflow's virtualenv
KINDS = ["sqlite", "files", "server", pytest.param("postgres", marks=pytest.mark.postgres)]


def reasons(summary: MlflowImportSummary) -> dict[str, str]:
    return {s.what: s.reason for s in summary.skipped}


def rows(store: MlflowStore) -> pd.DataFrame:
    written = store.written["rows"]
    return pd.DataFrame(written["data"], columns=written["columns"])


@pytest.mark.parametrize("kind", KINDS)
def test_a_store_imports_runs_metrics_tags_artifacts_versions_and_stages(
    kind: str, mlflow_stores: dict[str, MlflowStore], sqlite_client: Client
) -> None:
    store = store_of(mlflow_stores, kind)
    ids = store.written["runs"]
    summary = sqlite_client.import_mlflow(store.source)

    assert summary.runs_imported == 3 and summary.experiments == 3
    skipped = reasons(summary)
    assert skipped[f"run {ids['deleted']}"] == "deleted in MLflow"
    assert "NaN" in skipped[f"run {ids['pickled']}"]
    assert "cloudpickle" in skipped["churn:2"] and "pickle" in skipped["churn:2"]

    baseline = sqlite_client.get_run(ids["baseline"])
    assert (baseline.experiment, baseline.name, baseline.status) == (
        "churn",
        "baseline",
        "finished",
    )
    assert baseline.params == {"C": "1.0", "penalty": "l2"}
    assert baseline.tags["owner"] == "ana"
    git = baseline.provenance["git"]
    assert git["commit"] == store.written["commit"]
    assert (git["branch"], git["remote"]) == ("main", "git@example.com:team/churn.git")
    assert baseline.provenance["mlflow"]["run_id"] == ids["baseline"]
    loss = sqlite_client.metric_history(ids["baseline"], "loss")
    assert [(p.step, p.value, p.timestamp) for p in loss] == [
        (s, 1.0 / (s + 1), 1_700_000_000 + s) for s in range(5)
    ]
    assert sqlite_client.run_artifact(ids["baseline"], "notes.txt") == b"first notes\n"
    assert sqlite_client.run_artifact(ids["baseline"], "plots/curve.csv").startswith(b"step,")
    paths = {a.path for a in baseline.artifacts}
    assert {"mlflow-models/churn/1/MLmodel", "mlflow-models/churn/1/model.skops"} <= paths

    boosted = sqlite_client.get_run(ids["boosted"])
    assert boosted.status == "failed" and boosted.experiment == "ranking"
    rmse = sqlite_client.metric_history(ids["boosted"], "rmse")
    assert [p.step for p in rmse] == list(range(100))
    pickled = sqlite_client.get_run(ids["pickled"])
    assert [p.step for p in sqlite_client.metric_history(ids["pickled"], "loss")] == [0]
    # The pickle is kept as MLflow's files, with the run, but not loaded.
    assert "mlflow-models/churn/2/model.pkl" in {a.path for a in pickled.artifacts}

    churn = sqlite_client.load_model("churn:1")
    assert churn.version.flavor == "sklearn" and churn.version.flavor_details["format"] == "skops"
    assert churn.version.run_id == ids["baseline"]
    expected = np.array(store.written["predictions"]["churn:1"])
    np.testing.assert_allclose(churn.predict_proba(rows(store)), expected, rtol=1e-9)
    ranker = sqlite_client.load_model("ranker:1")
    assert ranker.version.flavor == "xgboost"
    expected = np.array(store.written["predictions"]["ranker:1"])
    np.testing.assert_allclose(ranker.predict(rows(store)), expected, rtol=1e-6)
    assert [v.version for v in sqlite_client.list_versions("churn")] == [1]

    # The legacy stage Production put version 1 in prod, with an import event.
    assert sqlite_client.get_model_version("churn@prod").version == 1
    (event,) = sqlite_client.history("churn", "prod")
    assert (event.action, event.to_version, event.actor) == ("import", 1, "tester")
    assert "Production" in event.reason

    again = sqlite_client.import_mlflow(store.source)
    assert not again.changed and again.runs_present == 3
    assert again.versions_present == ["churn:1", "ranker:1"]
    assert len(sqlite_client.metric_history(ids["boosted"])) == 100
    assert len(sqlite_client.history("churn", "prod")) == 1


def test_into_sqlite_and_postgres_stores_with_trusted_pickles_and_a_mapping(
    mlflow_stores: dict[str, MlflowStore], client: Client
) -> None:
    store = mlflow_stores["sqlite"]
    summary = client.import_mlflow(
        store.source, trust_pickles=True, environments={"champion": "prod"}
    )
    assert "churn:2 (cloudpickle (trusted))" in summary.versions_imported
    churn = client.load_model("churn:2")
    assert churn.version.flavor_details["format"] == "skops"  # no pickle in this store
    assert churn.version.description == "pickled retrain"
    expected = np.array(store.written["predictions"]["churn:2"])
    np.testing.assert_allclose(churn.predict_proba(rows(store)), expected, rtol=1e-9)
    # The alias champion -> prod outranks the stage Production of version 1.
    assert client.get_model_version("churn@prod").version == 2
    assert client.get_model_version("churn@staging").version == 2
    assert not client.import_mlflow(store.source, trust_pickles=True).changed


def test_an_environment_that_holds_another_version_is_left_alone(
    mlflow_stores: dict[str, MlflowStore], sqlite_client: Client
) -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(40, 2)), columns=["tenure", "spend"])
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(X, (X["tenure"] > 0).astype(int))
    sqlite_client.register_model(model, "ranker", input_example=X[:2])  # ranker:1, not MLflow's
    summary = sqlite_client.import_mlflow(mlflow_stores["sqlite"].source)
    assert "from elsewhere" in reasons(summary)["ranker:1"]
    assert sqlite_client.load_model("ranker:1").version.flavor == "sklearn"


def test_a_mapping_to_an_unknown_environment_is_refused(
    mlflow_stores: dict[str, MlflowStore], sqlite_client: Client
) -> None:
    with pytest.raises(InvalidInputError, match=r"'live'.*not an environment"):
        sqlite_client.import_mlflow(mlflow_stores["sqlite"].source, environments={"x": "live"})
    assert sqlite_client.tracker().total == 0


# -- killed midway, bad input ------------------------------------------------------------


def grown_copy(store: MlflowStore, folder: Path, runs: int, points: int) -> Path:
    """A copy of the SQLite store with ``runs`` more runs of ``points`` steps each, written
    into MLflow's own tables (as the benchmark's generator does)."""
    target = folder / "grown.db"
    shutil.copy(store.folder / "mlflow.db", target)
    with sqlite3.connect(target) as db:
        experiment = store.written["experiments"]["churn"]
        ids = [f"{n:032x}" for n in range(1, runs + 1)]
        db.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bo', 'FINISHED', "
            "?, ?, '', 'active', ?, ?)",
            [(i, f"r{n}", n, n + 1, str(folder / i), experiment) for n, i in enumerate(ids)],
        )
        db.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES ('loss', ?, ?, ?, ?, 0)",
            [(s / points, 1000 * s, i, s) for i in ids for s in range(points)],
        )
        db.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES ('lr', '0.1', ?)",
            [(i,) for i in ids],
        )
    return target


def test_an_import_killed_midway_continues_without_duplicates(
    mlflow_stores: dict[str, MlflowStore], tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import time

    from tests.cli.test_cli import MODELRAIL, cli

    source = grown_copy(mlflow_stores["sqlite"], tmp_path, runs=1500, points=20)
    project = tmp_path / "project"
    project.mkdir()
    assert cli(project, "init").returncode == 0
    database = project / ".modelrail" / "modelrail.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    importing = subprocess.Popen(
        [MODELRAIL, "import-mlflow", f"sqlite:///{source}", "--batch-size", "100"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def count(sql: str) -> int:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
            return int(db.execute(sql).fetchone()[0])

    deadline = time.monotonic() + 120
    while count("SELECT count(*) FROM runs") < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(importing.pid, signal.SIGKILL)
    importing.wait()
    partial = count("SELECT count(*) FROM runs")
    assert 0 < partial < 1503, "the import was not stopped midway"

    done = cli(project, "import-mlflow", f"sqlite:///{source}", "--json")
    assert done.returncode == 0, done.stderr
    assert count("SELECT count(*) FROM runs") == 1503
    points = count("SELECT count(*) FROM run_metrics")
    distinct = "SELECT count(*) FROM (SELECT DISTINCT run_id, key, step FROM run_metrics)"
    assert points == count(distinct) == 1500 * 20 + 5 + 1 + 1 + 100
    assert count("SELECT count(*) FROM run_params WHERE key = 'lr'") == 1500
    assert cli(project, "import-mlflow", f"sqlite:///{source}").stdout.count("nothing new") == 1


def test_a_store_with_an_unknown_schema_is_refused_naming_what_is_missing(
    mlflow_stores: dict[str, MlflowStore], tmp_path: Path, sqlite_client: Client
) -> None:
    damaged = tmp_path / "old.db"
    shutil.copy(mlflow_stores["sqlite"].folder / "mlflow.db", damaged)
    with sqlite3.connect(damaged) as db:
        db.execute("ALTER TABLE runs DROP COLUMN artifact_uri")
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeed1234'")
    with pytest.raises(MlflowSourceError, match=r"revision f00dfeed1234.*runs\.artifact_uri"):
        sqlite_client.import_mlflow(f"sqlite:///{damaged}")
    assert sqlite_client.tracker().total == 0


@pytest.fixture
def not_mlflow() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that is not MLflow (it answers 404 to everything)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sources_that_cannot_be_read_exit_non_zero_with_a_clear_message(
    tmp_path: Path, not_mlflow: str
) -> None:
    from tests.cli.test_cli import cli
    from tests.portability.mlflow_stores import free_port

    assert cli(tmp_path, "init").returncode == 0
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    own = tmp_path / ".modelrail" / "modelrail.db"
    cases = [
        (str(tmp_path / "missing"), 2, "does not exist"),
        (f"sqlite:///{tmp_path / 'missing.db'}", 2, "does not exist"),
        (f"sqlite:///{own}", 2, "not an MLflow tracking store"),
        (f"sqlite:///{garbage}", 3, "cannot read the MLflow database"),
        (str(tmp_path), 2, "not an MLflow file store"),
        (f"http://127.0.0.1:{free_port()}", 3, "cannot reach the MLflow server"),
        (not_mlflow, 2, "is it an MLflow server"),
        ("mysql://db/mlflow", 2, "give a sqlite:/// or postgresql:// URL"),
    ]
    for source, code, message in cases:
        done = cli(tmp_path, "import-mlflow", source)
        assert done.returncode == code, (source, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, (source, done.stderr)
    done = cli(tmp_path, "import-mlflow", str(tmp_path), "--env-map", "champion")
    assert done.returncode == 2 and "--env-map takes LABEL=ENV" in done.stderr
    with sqlite3.connect(own) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0

"""Generate an MLflow SQLite tracking store of many runs (run with MLflow's Python).

    python _mlflow_store.py DB_PATH RUNS STEPS

MLflow's own client creates the database (its schema at this MLflow's newest revision) and
one experiment; the runs are then written straight into MLflow's tables in one transaction
(logging 1,000,000 points through the client's batch calls takes far longer than any import
of them). Each run: 5 params, MLflow's system tags (user, run name, source, a git commit),
``loss`` at steps 0..STEPS-1 with a timestamp each, and its latest_metrics row. Finally
MLflow's client reads the store back (a search and one run's history) to prove it is a
store MLflow itself reads. Prints a JSON line with the counts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import uuid

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow import MlflowClient

BASE_MS = 1_700_000_000_000


def main(path: str, runs: int, steps: int) -> None:
    uri = f"sqlite:///{path}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    artifacts = os.path.join(os.path.dirname(os.path.abspath(path)), "artifacts")
    ids = [uuid.uuid4().hex for _ in range(runs)]
    start = time.perf_counter()
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', 'train.py', '', 'bench', "
            "'FINISHED', ?, ?, '', 'active', ?, ?)",
            (
                (
                    run,
                    f"run-{n}",
                    BASE_MS + n * 1000,
                    BASE_MS + n * 1000 + 900,
                    f"{artifacts}/{run}/artifacts",
                    experiment,
                )
                for n, run in enumerate(ids)
            ),
        )
        db.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            (
                (key, str(n % 7 + i), run)
                for n, run in enumerate(ids)
                for i, key in enumerate(("lr", "depth", "l2", "seed", "optimizer"))
            ),
        )
        db.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
            (
                (key, value, run)
                for n, run in enumerate(ids)
                for key, value in (
                    ("mlflow.user", "bench"),
                    ("mlflow.runName", f"run-{n}"),
                    ("mlflow.source.name", "train.py"),
                    ("mlflow.source.git.commit", f"{n:040x}"),
                )
            ),
        )
        db.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES ('loss', ?, ?, ?, ?, 0)",
            (
                (1.0 / (s + 1) + n * 1e-6, BASE_MS + n * 1000 + s, run, s)
                for n, run in enumerate(ids)
                for s in range(steps)
            ),
        )
        db.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
            "VALUES ('loss', ?, ?, ?, 0, ?)",
            (
                (1.0 / steps + n * 1e-6, BASE_MS + n * 1000 + steps - 1, steps - 1, run)
                for n, run in enumerate(ids)
            ),
        )
    written_s = time.perf_counter() - start
    found = client.search_runs([experiment], max_results=5)
    history = client.get_metric_history(ids[-1], "loss")
    assert len(found) == 5 and len(history) == steps, (len(found), len(history))
    print(json.dumps({"runs": runs, "points": runs * steps, "written_s": written_s}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

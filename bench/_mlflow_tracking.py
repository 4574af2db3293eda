"""MLflow side of bench/tracking.py: one scenario per process, result as JSON on stdout.

Run by bench/tracking.py with the MLflow virtualenv (bench/.envs/mlflow):
``python bench/_mlflow_tracking.py SCENARIO WORKDIR COUNT``. The store is MLflow 3's
default SQLite backend in WORKDIR/mlflow.db.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
from _workload import (
    EXPERIMENT,
    loss_at,
    metrics_for,
    params_for,
    parse_args,
    timed,
    timed_each,
)
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

# Populating with the fluent API is allowed to take this long before switching to log_batch.
POPULATE_BUDGET_SECONDS = 8 * 60
POPULATE_CHUNK_RUNS = 250


def open_store(workdir: Path) -> str:
    """Point MLflow at WORKDIR/mlflow.db; create the experiment; return its id."""
    mlflow.set_tracking_uri(f"sqlite:///{(workdir / 'mlflow.db').as_posix()}")
    return str(mlflow.set_experiment(EXPERIMENT).experiment_id)


def one_run(i: int) -> None:
    with mlflow.start_run():
        mlflow.log_params(params_for(i))
        mlflow.log_metrics(metrics_for(i))


def log_metric(workdir: Path, count: int) -> dict[str, object]:
    open_store(workdir)
    with mlflow.start_run():
        mlflow.log_metric("loss", loss_at(0), step=0)  # warm-up, not timed
        steps = range(1, count + 1)
        seconds = timed_each(steps, lambda i: mlflow.log_metric("loss", loss_at(i), step=i))
    return {"seconds": seconds, "calls": count}


def create_runs(workdir: Path, count: int) -> dict[str, object]:
    open_store(workdir)
    one_run(-1)  # warm-up: lazy imports, first connection; not timed
    seconds = timed_each(range(count), one_run)
    return {"seconds": seconds, "runs": count}


def batch_run(client: MlflowClient, experiment_id: str, i: int) -> None:
    run_id = client.create_run(experiment_id).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics_for(i).items()],
        params=[Param(k, str(v)) for k, v in params_for(i).items()],
    )
    client.set_terminated(run_id)


def populate(workdir: Path, count: int) -> dict[str, object]:
    """Fill the store with the fluent API, switching to MlflowClient.log_batch for the rest
    as soon as the fluent pace so far, extrapolated to ``count`` runs, exceeds the budget."""
    experiment_id = open_store(workdir)
    start = time.perf_counter()
    fluent = 0
    while fluent < count:
        chunk = range(fluent, min(fluent + POPULATE_CHUNK_RUNS, count))
        for i in chunk:
            one_run(i)
        fluent = chunk.stop
        projected = (time.perf_counter() - start) / fluent * count
        if projected > POPULATE_BUDGET_SECONDS:
            break
    method = "mlflow.start_run (same API as timed)"
    if fluent < count:
        client = MlflowClient()
        for i in range(fluent, count):
            batch_run(client, experiment_id, i)
        method = (
            f"mlflow.start_run for {fluent} runs, then MlflowClient.log_batch "
            f"(the fluent API's pace projected {projected:.0f} s)"
        )
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "runs": count, "method": method, "experiment_id": experiment_id}


def query(workdir: Path, count: int) -> dict[str, object]:
    """search_runs in a fresh process: first call (with opening the store), then again."""
    mlflow.set_tracking_uri(f"sqlite:///{(workdir / 'mlflow.db').as_posix()}")
    start = time.perf_counter()
    frame = mlflow.search_runs(experiment_names=[EXPERIMENT], max_results=50)
    first = time.perf_counter() - start
    repeat = timed(lambda: mlflow.search_runs(experiment_names=[EXPERIMENT], max_results=50))
    return {"first": first, "repeat": repeat, "rows": len(frame)}


SCENARIOS = {
    "log_metric": log_metric,
    "create_runs": create_runs,
    "populate": populate,
    "query": query,
}

if __name__ == "__main__":
    scenario, workdir, count = parse_args("_mlflow_tracking.py")
    print(json.dumps(SCENARIOS[scenario](Path(workdir), count)))

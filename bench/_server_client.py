"""Client side of bench/tracking.py's server scenario: one process per client, or the count.

Run with each side's Python (standard library and ``_workload`` at import time, so both
virtualenvs can run it):

    python bench/_server_client.py modelrail|mlflow client RUNS METRICS INDEX
    python bench/_server_client.py modelrail|mlflow count METRICS

``client`` talks to the server its environment names (modelrail: ``MODELRAIL_SERVER`` and
``MODELRAIL_TOKEN``; MLflow: ``MLFLOW_TRACKING_URI=http://...``). It logs one untimed run in
the experiment ``warmup`` (imports, first connection, the experiments made), prints
``{"ready": true}``, waits for a line on standard input, then logs RUNS runs into ``bench``:
each a few params, METRICS ``log_metric("loss", v, step=i)`` calls, then the run's end. Its
last line is JSON with the wall-clock start and end (``time.time()``, so the driver can join
the clients' spans). ``count`` reads the store afterwards through the side's own API
(``MODELRAIL_STORE`` / ``MLFLOW_TRACKING_URI=sqlite:///...``) and prints what arrived.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from _workload import EXPERIMENT, loss_at, params_for

WARMUP = "warmup"
PARAMS_PER_RUN = 5
USAGE = (
    "usage: _server_client.py modelrail|mlflow client RUNS METRICS INDEX\n"
    "       _server_client.py modelrail|mlflow count METRICS"
)


def few_params(i: int) -> dict[str, object]:
    """The first ``PARAMS_PER_RUN`` of the workload's params of run ``i``."""
    return dict(list(params_for(i).items())[:PARAMS_PER_RUN])


def wait_for_go() -> None:
    print(json.dumps({"ready": True}), flush=True)
    if not sys.stdin.readline():
        raise SystemExit("the driver went away before the start")


def timed_runs(runs: int, first: int, one_run: Callable[[int], None]) -> dict[str, Any]:
    wait_for_go()
    start, cpu = time.time(), time.process_time()
    for i in range(first, first + runs):
        one_run(i)
    return {"start": start, "end": time.time(), "cpu_s": time.process_time() - cpu, "runs": runs}


# -- modelrail ---------------------------------------------------------------------------------


def modelrail_client(runs: int, metrics: int, index: int) -> dict[str, Any]:
    import modelrail

    def one_run(i: int, experiment: str = EXPERIMENT, steps: int = metrics) -> None:
        with modelrail.start_run(experiment) as run:
            run.log_params(few_params(i))
            for step in range(steps):
                run.log_metric("loss", loss_at(step), step=step)

    one_run(-1, WARMUP, 1)
    return timed_runs(runs, index * runs, one_run)


def modelrail_count(metrics: int) -> dict[str, Any]:
    from modelrail.client import Client
    from modelrail.store.tracker_query import TrackerQuery

    with Client() as client:
        page = client.tracker(TrackerQuery(experiment=EXPERIMENT, limit=1_000_000))
        found = [client.get_run(row.run_id) for row in page.rows]
        points = [client.metric_history(run.id, "loss") for run in found]
    return tally(
        metrics,
        total=page.total,
        finished=[run.status == "finished" for run in found],
        params=[len(run.params) for run in found],
        steps=[sorted(p.step for p in history) for history in points],
    )


# -- MLflow ------------------------------------------------------------------------------------


def mlflow_client(runs: int, metrics: int, index: int) -> dict[str, Any]:
    import mlflow

    def one_run(i: int, steps: int = metrics) -> None:
        with mlflow.start_run():
            mlflow.log_params(few_params(i))
            for step in range(steps):
                mlflow.log_metric("loss", loss_at(step), step=step)

    mlflow.set_experiment(WARMUP)
    one_run(-1, 1)
    mlflow.set_experiment(EXPERIMENT)
    return timed_runs(runs, index * runs, one_run)


def mlflow_count(metrics: int) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return tally(metrics, total=0, finished=[], params=[], steps=[])
    found = client.search_runs([experiment.experiment_id], max_results=50_000)
    histories = [client.get_metric_history(run.info.run_id, "loss") for run in found]
    return tally(
        metrics,
        total=len(found),
        finished=[run.info.status == "FINISHED" for run in found],
        params=[len(run.data.params) for run in found],
        steps=[sorted(m.step for m in history) for history in histories],
    )


# -- both ----------------------------------------------------------------------------------------


def tally(
    metrics: int, *, total: int, finished: list[bool], params: list[int], steps: list[list[int]]
) -> dict[str, Any]:
    """What arrived; ``complete`` counts the runs holding exactly steps 0 .. METRICS-1."""
    return {
        "runs": total,
        "finished": sum(finished),
        "params": sum(params),
        "metrics": sum(len(s) for s in steps),
        "complete": sum(s == list(range(metrics)) for s in steps),
    }


def main() -> None:
    args = sys.argv[1:]
    if args[:2] in (["modelrail", "client"], ["mlflow", "client"]) and len(args) == 5:
        work = modelrail_client if args[0] == "modelrail" else mlflow_client
        result = work(int(args[2]), int(args[3]), int(args[4]))
    elif args[:2] in (["modelrail", "count"], ["mlflow", "count"]) and len(args) == 3:
        count = modelrail_count if args[0] == "modelrail" else mlflow_count
        result = count(int(args[2]))
    else:
        raise SystemExit(USAGE)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

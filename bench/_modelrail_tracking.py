"""modelrail side of bench/tracking.py: one scenario per process, result as JSON on stdout.

Run by bench/tracking.py with modelrail's virtualenv:
``python bench/_modelrail_tracking.py SCENARIO WORKDIR COUNT``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from _workload import (
    EXPERIMENT,
    loss_at,
    metrics_for,
    params_for,
    parse_args,
    timed,
    timed_each,
)

import modelrail


def open_client(workdir: Path) -> modelrail.Client:
    project = workdir / ".modelrail"
    project.mkdir(parents=True, exist_ok=True)
    return modelrail.Client(
        store_url=f"sqlite:///{(project / 'modelrail.db').as_posix()}",
        artifact_root=str(project / "artifacts"),
    )


def one_run(client: modelrail.Client, i: int) -> None:
    with client.start_run(EXPERIMENT) as run:
        run.log_params(params_for(i))
        run.log_metrics(metrics_for(i))


def log_metric(workdir: Path, count: int) -> dict[str, object]:
    client = open_client(workdir)
    run = client.start_run(EXPERIMENT)
    run.log_metric("loss", loss_at(0), step=0)  # warm-up, not timed
    seconds = timed_each(range(1, count + 1), lambda i: run.log_metric("loss", loss_at(i), step=i))
    run.end()
    return {"seconds": seconds, "calls": count}


def create_runs(workdir: Path, count: int) -> dict[str, object]:
    client = open_client(workdir)
    one_run(client, -1)  # warm-up: experiment row, lazy imports; not timed
    seconds = timed_each(range(count), lambda i: one_run(client, i))
    return {"seconds": seconds, "runs": count}


def populate(workdir: Path, count: int) -> dict[str, object]:
    client = open_client(workdir)
    seconds = timed_each(range(count), lambda i: one_run(client, i))
    return {"seconds": seconds, "runs": count, "method": "Client.start_run (same API as timed)"}


def query(workdir: Path, count: int) -> dict[str, object]:
    """The tracker page in a fresh process: first call (with opening the store), then again."""
    start = time.perf_counter()
    client = open_client(workdir)
    page = client.tracker()
    first = time.perf_counter() - start
    repeat = timed(client.tracker)
    return {"first": first, "repeat": repeat, "rows": len(page.rows), "total": page.total}


SCENARIOS = {
    "log_metric": log_metric,
    "create_runs": create_runs,
    "populate": populate,
    "query": query,
}

if __name__ == "__main__":
    scenario, workdir, count = parse_args("_modelrail_tracking.py")
    print(json.dumps(SCENARIOS[scenario](Path(workdir), count)))

"""Read every run of an MLflow store with MLflow's own client (run with MLflow's Python).

    python _mlflow_read.py TRACKING_URI

What a migration with MLflow's client has to do at the least: page through every run
(params, tags, latest metrics) and fetch each metric's full history. Prints a JSON line
with the counts and the seconds it took (after importing mlflow).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow import MlflowClient
from mlflow.entities import ViewType


def main(uri: str) -> None:
    client = MlflowClient(uri)
    start = time.perf_counter()
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs = points = 0
    token = None
    while True:
        page = client.search_runs(experiments, max_results=1000, page_token=token)
        for run in page:
            runs += 1
            for key in run.data.metrics:
                points += len(client.get_metric_history(run.info.run_id, key))
        token = page.token
        if not token:
            break
    print(json.dumps({"runs": runs, "points": points, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main(sys.argv[1])

"""The prediction log of servers in their own processes: killed with SIGKILL while writing
(only whole files remain, and every one reads), and ``--workers`` (each worker logs what it
answered; /metrics adds up every worker's counts)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from modelrail.monitoring.logfiles import read_predictions
from tests.serving.conftest import Http, clean_environ, free_port, wait_until_healthy
from tests.serving.log_project import PREDICT, Project, make_project, records

# A server with the options given as JSON, in the project of the working folder.
SERVE = """
import json, sys
from modelrail.client import default_client
from modelrail.serving.server import ServeOptions, run_server
run_server(default_client(), ServeOptions(**json.loads(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return make_project(tmp_path_factory.mktemp("log-processes"))


@contextmanager
def server_process(project: Project, logs: Path, **options: Any) -> Iterator[tuple[int, Any]]:
    port = free_port()
    spec = {"environment": "dev", "port": port, **options}
    environ = {**clean_environ(), "MODELRAIL_MONITORING_ROOT": str(logs)}
    output = logs.parent / f"serve-{port}.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, json.dumps(spec)],
            cwd=project.root,
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_healthy(port, 60, alive=lambda: process.poll() is None)
        yield port, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def send_load(
    port: int, body: Any, seconds: float, threads: int, *, reconnect: bool = False
) -> list[str]:
    """Requests from ``threads`` connections for ``seconds`` (each on a new connection with
    ``reconnect``); the ids of those answered 200."""
    answered: list[str] = []
    lock = threading.Lock()
    until = time.monotonic() + seconds

    def load() -> None:
        with Http(port) as http:
            while time.monotonic() < until:
                try:
                    reply = http.post(PREDICT, body)
                except OSError:
                    return  # the server was killed
                if reply.status == 200:
                    with lock:
                        answered.append(reply.headers["x-request-id"])
                if reconnect:
                    http.close()

    workers = [threading.Thread(target=load) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 30)
    return answered


def test_a_server_killed_while_writing_leaves_only_whole_files(
    project: Project, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    body = {"inputs": records(project.frame.iloc[90:93])}
    options = {"log_predictions": 1.0, "log_file_rows": 6, "log_collect_every_s": 0.005}
    with server_process(project, logs, **options) as (port, process):
        answered: list[str] = []
        loader = threading.Thread(
            target=lambda: answered.extend(send_load(port, body, 3.0, threads=4))
        )
        loader.start()
        time.sleep(1.5)
        os.killpg(process.pid, signal.SIGKILL)  # in the middle of the load
        loader.join(timeout=60)
    files = sorted((logs / "predictions" / "model=churn").glob("date=*/*.parquet"))
    assert len(files) >= 3, "the server wrote no files before it was killed"
    stray = files[0].parent / ".0-0-stray.parquet.tmp"
    stray.write_bytes(b"PAR1 half a file")  # what a kill in the middle of a write leaves
    for path in files:
        assert pq.read_table(path).num_rows % 3 == 0, path  # whole requests of 3 rows
    table = read_predictions(logs, "churn")
    assert 0 < table.num_rows <= 3 * len(answered)
    assert set(table.column("request_id").to_pylist()) <= set(answered)


def test_workers_each_log_what_they_answer_and_metrics_add_up(
    project: Project, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    body = {"inputs": records(project.frame.iloc[95:96])}
    options = {
        "workers": 2,
        "log_predictions": 1.0,
        "log_file_seconds": 0.1,
        "log_collect_every_s": 0.02,
    }
    with server_process(project, logs, **options) as (port, process):
        answered = send_load(port, body, 1.5, threads=4, reconnect=True)
        assert answered
        deadline, written = time.monotonic() + 20, 0.0
        while time.monotonic() < deadline and written < len(answered):
            with Http(port) as http:
                text = http.get("/metrics").text
            found = re.search(
                r'^modelrail_prediction_log_written_total\{model="churn"\} (\S+)$', text, re.M
            )
            written = float(found.group(1)) if found else 0.0
            time.sleep(0.1)
        assert written == len(answered)
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) is not None
    table = read_predictions(logs, "churn")
    assert sorted(table.column("request_id").to_pylist()) == sorted(answered)
    writers = {path.name.split("-")[1] for path in (logs / "predictions").rglob("*.parquet")}
    # Written by both workers (each answered some of the new connections), not the parent.
    assert len(writers) == 2 and str(process.pid) not in writers

"""The last part of the demo: prod serves with its predictions logged, this week's patients
arrive measured by a recalibrated scanner (every size reading a quarter larger), the true
diagnoses come in later, and ``modelrail monitor`` shows the drift and the accuracy lost."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pandas as pd
import uvicorn
from rich.console import Console

from modelrail.client import Client
from modelrail.serving.server import ServeOptions, bind, build_server

HOST = "127.0.0.1"
# A scanner recalibrated this week: every size reading (radius, perimeter, area) comes out
# a quarter larger.
SHIFTED = tuple(
    f"{kind}_{size}" for kind in ("mean", "worst") for size in ("radius", "perimeter", "area")
)
SHIFT = 1.25
REQUESTS = 240
_JSON = {"content-type": "application/json"}


def run_monitoring_story(
    client: Client, model: str, patients: pd.DataFrame, diagnoses: pd.Series, out: Console
) -> None:
    from modelrail.cli.monitor import print_report

    out.print("\n[bold]monitoring[/]: prod serves with every prediction logged")
    out.print("$ modelrail serve --env prod --log-predictions 1.0")
    week = patients.sample(n=REQUESTS, random_state=7)
    arriving = week.drop(columns=["patient_id"])
    for column in SHIFTED:
        if column in arriving:
            arriving[column] = arriving[column] * SHIFT
    columns = [c.name for c in client.get_model_version(f"{model}@prod").signature.inputs]
    outcomes = []
    with _serving(client) as port:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            for patient_id, (_, row) in zip(week["patient_id"], arriving.iterrows(), strict=True):
                body = orjson.dumps({"columns": columns, "data": [row[columns].tolist()]})
                connection.request("POST", f"/v1/models/{model}/predict", body, _JSON)
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"the demo's server answered {answer.status}")
                request_id = answer.getheader("x-request-id")
                outcomes.append((request_id, int(diagnoses.loc[patient_id])))
        finally:
            connection.close()
    out.print(
        f"{REQUESTS} patients scored over HTTP; their size readings (radius, perimeter, area) "
        f"came from a scanner reading {SHIFT - 1:.0%} high; each answer's x-request-id was kept"
    )
    labels = _write_outcomes(client.settings.project_root, outcomes)
    out.print("\nlater, the true diagnoses arrive:")
    out.print(
        f"$ modelrail feedback load {labels.relative_to(client.settings.project_root)} "
        f"--model {model} --id-column request_id --label malignant"
    )
    summary = client.load_feedback(
        model,
        inputs=[str(labels)],
        id_columns=["request_id"],
        label_column="malignant",
    )
    matched = summary.labels - summary.unmatched
    out.print(f"{summary.labels:,} labels stored, {matched:,} of them for logged predictions")
    out.print(f"\n$ modelrail monitor {model}@prod --since 1h")
    report = client.monitor(f"{model}@prod", since=time.time() - 3600)
    print_report(report, out, "1h")


@contextmanager
def _serving(client: Client) -> Iterator[int]:
    options = ServeOptions(environment="prod", log_predictions=1.0)
    built = build_server(Client(settings=client.settings, user="server"), options)
    sock = bind(HOST, 0)
    config = uvicorn.Config(built.app, lifespan="on", access_log=False, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_until_ready(int(sock.getsockname()[1]), thread)
        yield int(sock.getsockname()[1])
    finally:
        # Stopping flushes the prediction log: every answered request is on disk after this.
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        built.close()


def _wait_until_ready(port: int, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and thread.is_alive():
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                connection.close()
                return
            connection.close()
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the demo's prediction server did not start")


def _write_outcomes(root: Path, outcomes: list[tuple[str | None, int]]) -> Path:
    target = root / "data" / "diagnoses.parquet"
    target.parent.mkdir(exist_ok=True)
    frame = pd.DataFrame(outcomes, columns=["request_id", "malignant"])
    frame.to_parquet(target, index=False)
    return target

"""Notifications: every change of what an environment holds reaches CI/CD as JSON."""

from __future__ import annotations

import json
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import ModelVersion

MODEL = "pets-classifier"
T = TypeVar("T")


@pytest.fixture(scope="module")
def fitted_model() -> tuple[Any, pd.DataFrame]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y), X


def log_version(client: Client, fitted_model: tuple[Any, pd.DataFrame]) -> ModelVersion:
    model, X = fitted_model
    with client.start_run("pets") as run:
        run.log_metric("accuracy", 0.9)
        return run.log_model(model, MODEL, input_example=X[:5])


def wait_for(find: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


MakeClient = Callable[..., Client]
# Delivery does not depend on the store: past the first two tests, SQLite is enough.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def make_client(store_url: str, tmp_path: Path) -> Iterator[MakeClient]:
    made: list[Client] = []

    def make(*, url: str | None = None, command: str | None = None, user: str = "alice") -> Client:
        init_project(tmp_path)
        lines = ["[environments]"]
        if url is not None:
            lines.append(f"notify_url = {json.dumps(url)}")
        if command is not None:
            lines.append(f"notify_command = {json.dumps(command)}")
        (tmp_path / "modelrail.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        settings = load_settings(cwd=tmp_path, environ={}, create=False)
        made.append(Client(store_url=store_url, settings=settings, user=user))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on 127.0.0.1 recording every POST it gets."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "json": json.loads(body),
                }
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/modelrail", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def script(tmp_path: Path, name: str, body: str, *args: str) -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return shlex.join([sys.executable, str(path), *args])


def log_text(client: Client) -> str:
    path = client.settings.project_dir / "notifications.log"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def log_line(client: Client, event_id: int) -> str | None:
    lines = [line for line in log_text(client).splitlines() if f" event {event_id}: " in line]
    return lines[-1] if lines else None


# -- HTTP -----------------------------------------------------------------------------------


def test_a_promotion_is_posted_as_json_to_the_notify_url(
    make_client: MakeClient,
    receiver: tuple[str, list[dict[str, Any]]],
    fitted_model: tuple[Any, pd.DataFrame],
) -> None:
    url, received = receiver
    client = make_client(url=url)
    log_version(client, fitted_model)
    second = log_version(client, fitted_model)
    client.promote(f"{MODEL}:1", to="staging")
    outcome = client.promote(f"{MODEL}:2", to="staging", reason="beats v1 on recall")
    event = outcome.event
    assert event is not None

    def staging_2() -> dict[str, Any] | None:
        return next((r for r in list(received) if r["json"]["id"] == event.id), None)

    post = wait_for(staging_2, "POST for the promotion to staging")
    assert post["path"] == "/hooks/modelrail"
    assert post["content_type"] == "application/json"
    payload = post["json"]
    assert {k: payload[k] for k in ("type", "action", "model", "environment")} == {
        "type": "environment.changed",
        "action": "promote",
        "model": MODEL,
        "environment": "staging",
    }
    assert (payload["from_version"], payload["to_version"]) == (1, 2)
    assert (payload["actor"], payload["reason"], payload["forced"]) == (
        "alice",
        "beats v1 on recall",
        False,
    )
    assert payload["reference"] == f"{MODEL}@staging"
    assert payload["gates"] == [g.to_json() for g in outcome.gates]
    assert {g["gate"] for g in payload["gates"]} == {
        "signature compatible",
        "smoke test within 500 ms",
    }
    assert (payload["artifact_sha256"], payload["run_id"]) == (
        second.artifact_sha256,
        second.run_id,
    )
    assert payload["at"].endswith("+00:00")
    # Every change was told, once: two versions entering dev and two promotions.
    wait_for(lambda: len(received) >= 4, "four POSTs")
    time.sleep(0.2)
    changes = {e.id for e in client.history() if e.action in ("auto", "promote")}
    assert sorted(r["json"]["id"] for r in received) == sorted(changes)


def test_approval_and_rollback_are_told_but_an_open_request_is_not(
    make_client: MakeClient,
    receiver: tuple[str, list[dict[str, Any]]],
    fitted_model: tuple[Any, pd.DataFrame],
) -> None:
    url, received = receiver
    alice = make_client(url=url)
    bob = make_client(url=url, user="bob")
    for _ in range(2):
        version = log_version(alice, fitted_model)
        alice.promote(version.reference, to="staging")
    request = alice.promote(f"{MODEL}:2", to="prod").request
    assert request is not None
    approved = bob.approve(request.id, reason="reviewed").event
    rolled_back = alice.rollback(MODEL, "staging", reason="v2 is slow")
    assert approved is not None
    by_id = wait_for(
        lambda: (lambda ids: ids if {approved.id, rolled_back.id} <= set(ids) else None)(
            {r["json"]["id"]: r["json"] for r in list(received)}
        ),
        "POSTs for the approval and the rollback",
    )
    assert (by_id[approved.id]["action"], by_id[approved.id]["actor"]) == ("approve", "bob")
    assert (by_id[approved.id]["environment"], by_id[approved.id]["to_version"]) == ("prod", 2)
    told = by_id[rolled_back.id]
    assert (told["action"], told["from_version"], told["to_version"]) == ("rollback", 2, 1)
    assert (told["reason"], told["gates"]) == ("v2 is slow", [])
    wait_for(lambda: len(received) >= 6, "six POSTs")
    time.sleep(0.2)
    request_events = {e.id for e in alice.history() if e.action == "request"}
    assert request_events and not request_events & {r["json"]["id"] for r in received}
    assert len(received) == 6  # 2 auto + 2 promote + approve + rollback


@sqlite_only
def test_a_forced_promotion_is_told_as_forced(
    make_client: MakeClient,
    receiver: tuple[str, list[dict[str, Any]]],
    fitted_model: tuple[Any, pd.DataFrame],
) -> None:
    url, received = receiver
    client = make_client(url=url)
    log_version(client, fitted_model)
    event = client.promote(f"{MODEL}:1", to="staging", force=True, reason="incident 9").event
    assert event is not None
    payload = wait_for(
        lambda: next((r["json"] for r in list(received) if r["json"]["id"] == event.id), None),
        "POST for the forced promotion",
    )
    assert (payload["forced"], payload["gates"], payload["reason"]) == (True, [], "incident 9")


# -- command ----------------------------------------------------------------------------------

WRITE_STDIN = """\
import json, pathlib, sys

payload = sys.stdin.read()
event = json.loads(payload)
out = pathlib.Path(sys.argv[1])
out.mkdir(exist_ok=True)
(out / f"{event['id']}.json").write_text(payload)
"""


@sqlite_only
def test_the_notify_command_gets_the_json_on_stdin(
    make_client: MakeClient, tmp_path: Path, fitted_model: tuple[Any, pd.DataFrame]
) -> None:
    out = tmp_path / "received"
    client = make_client(command=script(tmp_path, "hook.py", WRITE_STDIN, str(out)))
    log_version(client, fitted_model)
    outcome = client.promote(f"{MODEL}:1", to="staging", reason="nightly")
    assert outcome.event is not None
    written = out / f"{outcome.event.id}.json"
    wait_for(written.is_file, f"{written}")
    payload = json.loads(wait_for(written.read_text, "content"))
    assert (payload["model"], payload["environment"], payload["action"]) == (
        MODEL,
        "staging",
        "promote",
    )
    assert (payload["from_version"], payload["to_version"], payload["actor"]) == (None, 1, "alice")
    assert payload["gates"] == [g.to_json() for g in outcome.gates]
    line = wait_for(lambda: log_line(client, outcome.event.id), "log line")  # type: ignore[union-attr]
    assert line.endswith(f"event {outcome.event.id}: delivered")


@sqlite_only
def test_command_and_url_are_both_told(
    make_client: MakeClient,
    tmp_path: Path,
    receiver: tuple[str, list[dict[str, Any]]],
    fitted_model: tuple[Any, pd.DataFrame],
) -> None:
    url, received = receiver
    out = tmp_path / "received"
    client = make_client(url=url, command=script(tmp_path, "hook.py", WRITE_STDIN, str(out)))
    version = log_version(client, fitted_model)
    (event,) = client.history(MODEL)
    wait_for((out / f"{event.id}.json").is_file, "the command's copy")
    posted = wait_for(lambda: list(received), "the POST")
    assert posted[0]["json"]["id"] == event.id
    assert posted[0]["json"]["to_version"] == version.version


# -- failing receivers --------------------------------------------------------------------------


@sqlite_only
def test_an_unreachable_url_neither_blocks_nor_undoes_the_promotion_and_is_logged(
    make_client: MakeClient, fitted_model: tuple[Any, pd.DataFrame]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hooks"
    client = make_client(url=url)
    log_version(client, fitted_model)
    started = time.monotonic()
    outcome = client.promote(f"{MODEL}:1", to="staging")
    assert time.monotonic() - started < 5
    assert outcome.event is not None
    assert {(h.environment, h.version) for h in client.board()} == {("dev", 1), ("staging", 1)}
    line = wait_for(lambda: log_line(client, outcome.event.id), "log line")  # type: ignore[union-attr]
    assert f"event {outcome.event.id}: FAILED POST {url} failed: " in line
    assert "refused" in line.lower()
    assert client.history(MODEL)[-1] == outcome.event


FAIL = "import sys\nsys.stdin.read()\nsys.stderr.write('deploy refused\\n')\nsys.exit(1)\n"


@sqlite_only
def test_a_failing_command_neither_blocks_nor_undoes_the_promotion_and_is_logged(
    make_client: MakeClient, tmp_path: Path, fitted_model: tuple[Any, pd.DataFrame]
) -> None:
    command = script(tmp_path, "fail.py", FAIL)
    client = make_client(command=command)
    log_version(client, fitted_model)
    outcome = client.promote(f"{MODEL}:1", to="staging")
    assert outcome.event is not None
    assert {(h.environment, h.version) for h in client.board()} == {("dev", 1), ("staging", 1)}
    line = wait_for(lambda: log_line(client, outcome.event.id), "log line")  # type: ignore[union-attr]
    assert line.endswith(
        f"event {outcome.event.id}: FAILED command {command!r} exited 1: deploy refused"
    )
    assert client.history(MODEL)[-1] == outcome.event


SLOW = "import sys, time\nsys.stdin.read()\ntime.sleep(2)\n"


@sqlite_only
def test_a_slow_receiver_does_not_hold_up_the_promotion(
    make_client: MakeClient, tmp_path: Path, fitted_model: tuple[Any, pd.DataFrame]
) -> None:
    client = make_client(command=script(tmp_path, "slow.py", SLOW))
    log_version(client, fitted_model)
    started = time.monotonic()
    outcome = client.promote(f"{MODEL}:1", to="staging")
    assert time.monotonic() - started < 2
    assert outcome.event is not None and log_line(client, outcome.event.id) is None
    ids = [e.id for e in client.history(MODEL)]
    for event_id in ids:  # let the receivers finish before the test ends
        line = wait_for(lambda: log_line(client, event_id), "log line")  # noqa: B023
        assert line.endswith("delivered")

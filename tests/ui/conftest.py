"""Fixtures of the dashboard tests: projects seeded through the public API (tracked runs with
stepped metrics and artifacts, registered and promoted model versions, batch runs and a
schedule), and the real dashboard served by uvicorn on 127.0.0.1 on a background thread,
started and always stopped here.

Every request goes over a real TCP connection with the standard library's ``http.client``;
every wait is bounded.
"""

from __future__ import annotations

import http.client
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import pytest
import uvicorn
from sklearn.linear_model import LogisticRegression
from starlette.applications import Starlette

from modelrail.batch.runner import run_batch
from modelrail.batch.schedules import create_schedule
from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.config import Settings, init_project, load_settings
from modelrail.errors import ModelrailError
from modelrail.serving.server import bind
from modelrail.ui import create_app

HOST = "127.0.0.1"
MODEL = "iris-clf"
FEATURES = ("f0", "f1", "f2", "f3")
START_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 20.0
POLICY = """
[environments]
chain = ["dev", "staging", "prod"]
primary_metric = "accuracy"

[environments.staging]
min = { accuracy = 0.9 }

[environments.prod]
max = { false_positive_rate = 0.2 }
"""


# -- HTTP over 127.0.0.1 ---------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def count(self, test_id: str) -> int:
        return len(re.findall(rf'data-testid="{re.escape(test_id)}"', self.text))


@dataclass
class UiServer:
    port: int
    app: Starlette | None = None

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        body = None
        sent = dict(headers or {})
        if form is not None:
            body = urlencode(form).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn = http.client.HTTPConnection(HOST, self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, form=form or {}, **kwargs)

    def visitor(self) -> Visitor:
        return Visitor(self)


@dataclass
class Visitor:
    """Someone using the dashboard as a browser does: keeps the session cookie the server
    sets, and sends the CSRF token of the last page it read with every form (reading the
    login page first when it has none)."""

    server: UiServer
    cookie: str = ""
    csrf_token: str = ""

    @property
    def origin(self) -> str:
        return self.server.origin

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> Reply:
        return self._remember(self.server.get(path, headers=self._with_cookie(headers)))

    def post(
        self,
        path: str,
        form: dict[str, str] | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        if not self.csrf_token:
            self.get("/login")
        fields = {"csrf_token": self.csrf_token, **(form or {})}
        return self._remember(self.server.post(path, fields, headers=self._with_cookie(headers)))

    def _with_cookie(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {"Cookie": self.cookie, **(headers or {})} if self.cookie else dict(headers or {})

    def _remember(self, reply: Reply) -> Reply:
        cookie = reply.headers.get("set-cookie", "").split(";", 1)[0]
        if cookie.startswith("modelrail_ui_session="):
            self.cookie = cookie if cookie.partition("=")[2].strip('"') else ""
            self.csrf_token = ""  # a new session: its token comes with the next page
        found = re.search(r'<meta name="csrf-token" content="([^"]*)">', reply.text)
        if found:
            self.csrf_token = found.group(1)
        return reply


@contextmanager
def running_ui(app: Starlette) -> Iterator[UiServer]:
    """``app`` under uvicorn on a free port, as ``modelrail ui`` runs it."""
    sock = bind(HOST, 0)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        app, lifespan="on", access_log=False, log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"ui-{port}", daemon=True
    )
    thread.start()
    running = UiServer(port, app)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if running.get("/health").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail(f"the dashboard on port {port} did not start")
            time.sleep(0.05)
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the uvicorn thread did not stop"


# -- seeded projects ----------------------------------------------------------------------------


@dataclass
class Seeded:
    """A project with tracked runs, three versions of ``MODEL`` and batch runs."""

    root: Path
    settings: Settings
    runs: dict[str, str] = field(default_factory=dict)  # label -> run id
    batch_ok: str = ""
    batch_failed: str = ""

    def client(self, user: str = "alice") -> Client:
        return Client(settings=self.settings, user=user)


def project_settings(root: Path, user: str = "alice", store_url: str | None = None) -> Settings:
    """A project with ``POLICY``; its store is SQLite in the project unless ``store_url``."""
    init_project(root)
    (root / "modelrail.toml").write_text(POLICY, encoding="utf-8")
    environ = {"MODELRAIL_USER": user}
    if store_url is not None:
        environ["MODELRAIL_STORE"] = store_url
    return load_settings(cwd=root, environ=environ, create=False)


def tiny_png() -> bytes:
    """A 2x2 PNG, made here so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\xd5\x5e\x00" * 2 for _ in range(2))
    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=list(FEATURES))
    data.insert(0, "id", np.arange(rows, dtype=np.int64))
    return data


def train_version(
    client: Client,
    files: Path,
    *,
    c: float,
    accuracy: float,
    fpr: float,
    team: str,
    train_rows: int = 120,
) -> str:
    """One tracked run that registers the next version of ``MODEL``; returns the run id."""
    data = frame(train_rows, seed=1)
    features = data[list(FEATURES)]
    target = (data["f0"] + data["f1"] > 0).astype(int)
    test = frame(40, seed=2)[list(FEATURES)]
    with client.start_run("iris", architecture="logistic", tags={"team": team}) as run:
        run.log_dataset(features, name="iris", role="train")
        run.log_dataset(test, name="iris", role="test")
        run.log_params({"C": c, "max_iter": 200})
        for step in range(8):
            run.log_metric("loss", 1.0 / (step + 1) + c / 100, step=step)
        run.log_metrics({"accuracy": accuracy, "false_positive_rate": fpr})
        run.log_text(f"C={c}\n", "notes.txt")
        picture = files / "confusion.png"
        picture.write_bytes(tiny_png())
        run.log_artifact(picture)
        model = LogisticRegression(C=c, max_iter=200).fit(features, target)
        run.log_model(model, name=MODEL, input_example=features.head(5))
        return run.id


def seed_models(root: Path, user: str = "alice", store_url: str | None = None) -> Seeded:
    """Three versions of ``MODEL``: 1 and 3 pass staging's gate (accuracy >= 0.9), 2 does
    not; dev holds 3 (the newest), nothing else is promoted."""
    settings = project_settings(root, user, store_url)
    seeded = Seeded(root, settings)
    files = root / "files"
    files.mkdir(exist_ok=True)
    with seeded.client(user) as client:
        seeded.runs["v1"] = train_version(client, files, c=1.0, accuracy=0.95, fpr=0.05, team="red")
        seeded.runs["v2"] = train_version(client, files, c=0.1, accuracy=0.6, fpr=0.3, team="blue")
        seeded.runs["v3"] = train_version(
            client, files, c=10.0, accuracy=0.97, fpr=0.02, team="red", train_rows=150
        )
    return seeded


def seed_everything(root: Path, store_url: str | None = None) -> Seeded:
    """``seed_models`` plus version 1 in staging, runs of another experiment (one failed),
    a batch run that succeeded, one that failed, and a cron schedule."""
    seeded = seed_models(root, store_url=store_url)
    with seeded.client() as client:
        client.promote(f"{MODEL}:1", "staging", reason="first candidate")
        for index, value in enumerate((0.81, 0.86)):
            with client.start_run("wine", tags={"team": "green"}) as run:
                run.log_params({"depth": index + 3})
                run.log_metrics({"accuracy": value, "rmse": 1 - value})
                seeded.runs[f"wine{index}"] = run.id
        with pytest.raises(ValueError), client.start_run("wine") as run:
            seeded.runs["failed"] = run.id
            raise ValueError("the data ran out")
        inputs = root / "inputs"
        inputs.mkdir()
        frame(64, seed=5).to_parquet(inputs / "day.parquet")
        frame(8, seed=6).drop(columns=["f3"]).to_parquet(inputs / "broken.parquet")
        spec = JobSpec(
            reference=f"{MODEL}@dev",
            inputs=(str(inputs / "day.parquet"),),
            output="sqlite:///scores.db",
            table="scores",
            id_columns=("id",),
        )
        seeded.batch_ok = run_batch(client, spec).id
        with pytest.raises(ModelrailError):
            run_batch(client, replace(spec, inputs=(str(inputs / "broken.parquet"),)))
        failed = [r for r in _batch_runs(client) if r.status == "failed"]
        seeded.batch_failed = failed[0].id
        create_schedule(client, "nightly", spec, cron="0 2 * * *", timezone="Europe/Berlin")
    return seeded


def _batch_runs(client: Client) -> list[Any]:
    from modelrail.store.batch_runs_repo import BatchRunRepository

    return BatchRunRepository(client.db).recent()


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed_everything(tmp_path_factory.mktemp("ui-project"))


@pytest.fixture(scope="session")
def ui(seeded: Seeded) -> Iterator[UiServer]:
    """The dashboard on the seeded project, without a token. Tests using it only read."""
    with running_ui(create_app(seeded.settings)) as server:
        yield server


@dataclass
class Fresh:
    """A project of its own for a test that changes things, and dashboards on it."""

    seeded: Seeded
    stack: ExitStack

    def serve(self, token: str | None = None) -> UiServer:
        return self.stack.enter_context(running_ui(create_app(self.seeded.settings, token=token)))

    def board(self) -> dict[str, int]:
        """environment -> version of ``MODEL``, read with a client of its own."""
        with self.seeded.client() as client:
            return {h.environment: h.version for h in client.board() if h.model == MODEL}


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Fresh]:
    with ExitStack() as stack:
        yield Fresh(seed_models(tmp_path), stack)

"""Fixtures of the serving tests: a project holding small fitted models, and real prediction
servers on 127.0.0.1 (uvicorn on a background thread, started and always stopped here).

Every request in these tests goes over a real TCP connection with the standard library's
``http.client``; every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelrail.client import Client
from modelrail.config import Settings, init_project, load_settings
from modelrail.serving.server import BuiltServer, ServeOptions, bind, build_server

HOST = "127.0.0.1"
MODELRAIL = str(Path(sys.executable).with_name("modelrail"))
REQUEST_TIMEOUT_S = 10.0
START_TIMEOUT_S = 15.0


# -- HTTP over 127.0.0.1 ---------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Http:
    """One keep-alive connection to a server; reopened only when the server closes it."""

    def __init__(self, port: int, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.port = port
        self.timeout = timeout
        self.connections = 0
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        if self._conn.sock is None:
            self._conn.connect()
            self.connections += 1
        return self._conn

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        *,
        json_body: Any = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
        encode_chunked: bool = False,
    ) -> Reply:
        if json_body is not None:
            body = json.dumps(json_body).encode()
        if isinstance(body, str):
            body = body.encode()
        sent = dict(headers or {})
        if content_type is not None and body is not None:
            sent.setdefault("Content-Type", content_type)
        kept = self._conn is not None and self._conn.sock is not None
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=sent, encode_chunked=encode_chunked)
            response = conn.getresponse()
            data = response.read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.close()
            if not kept:
                raise
            # The server closed the idle kept connection (its keep-alive timeout passed while a
            # busy machine ran other tests) before it read this request: send it again on a new
            # one, as HTTP clients do.
            return self.request(
                method,
                path,
                body,
                content_type=content_type,
                headers=headers,
                encode_chunked=encode_chunked,
            )
        except (http.client.HTTPException, OSError):
            self.close()
            raise
        if response.will_close:
            self.close()
        return Reply(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            data,
        )

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        if isinstance(body, bytes | str):
            return self.request("POST", path, body, **kwargs)
        return self.request("POST", path, json_body=body, **kwargs)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def is_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((HOST, port)) == 0


def wait_until_healthy(port: int, timeout_s: float, alive: Any = None) -> None:
    """Poll GET /health until it answers 200; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            pytest.fail(f"the server on port {port} stopped before answering /health ({last})")
        try:
            with Http(port, timeout=1.0) as http_:
                if http_.get("/health").status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    pytest.fail(f"the server on port {port} did not answer /health within {timeout_s} s ({last})")


# -- servers on a background thread ----------------------------------------------------------


@dataclass
class RunningServer:
    port: int
    built: BuiltServer
    http: Http

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.port}"

    def connect(self) -> Http:
        return Http(self.port)

    def get(self, path: str) -> Reply:
        return self.http.get(path)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.http.post(path, body, **kwargs)

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.http.request(method, path, body, **kwargs)


@contextmanager
def running_server(settings: Settings, options: ServeOptions) -> Iterator[RunningServer]:
    """``build_server`` + uvicorn (uvloop, httptools, as ``modelrail serve``) on a free port."""
    client = Client(settings=settings, user="server")
    try:
        built = build_server(client, options)
    except BaseException:
        client.close()
        raise
    sock = bind(HOST, 0)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        built.app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    running = RunningServer(port, built, Http(port))
    try:
        wait_until_healthy(port, START_TIMEOUT_S, alive=thread.is_alive)
        yield running
    finally:
        running.http.close()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        built.close()
        assert not thread.is_alive(), "the uvicorn thread did not stop"


# -- a project holding small models ------------------------------------------------------------


@dataclass
class Zoo:
    """A project whose dev environment holds one version of each model below."""

    root: Path
    settings: Settings
    data: dict[str, pd.DataFrame] = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)

    def client(self) -> Client:
        return Client(settings=self.settings, user="tester")

    def rows(self, name: str, start: int = 100, count: int = 7) -> pd.DataFrame:
        """Rows the model did not get as its input example, with the signature's columns."""
        return self.data[name].iloc[start : start + count]

    def expected(self, name: str, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        model = self.fitted[name]
        data: Any = rows if hasattr(model, "feature_names_in_") else rows.to_numpy()
        proba = getattr(model, "predict_proba", None)
        return np.asarray(model.predict(data)), (None if proba is None else proba(data))


MODEL_NAMES = ("cancer", "iris", "diabetes", "forest")


def _fit_zoo() -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    cancer_X, cancer_y = load_breast_cancer(return_X_y=True, as_frame=True)
    iris_X, iris_y = load_iris(return_X_y=True)
    iris_names = np.asarray(load_iris().target_names)[iris_y]
    diabetes_X, diabetes_y = load_diabetes(return_X_y=True, as_frame=True)
    # iris is fitted on a plain array: its columns are named "0".."3".
    iris_frame = pd.DataFrame(iris_X, columns=[str(i) for i in range(iris_X.shape[1])])
    shuffled = np.random.default_rng(0).permutation(len(iris_frame))
    iris_frame, iris_y, iris_names = (
        iris_frame.iloc[shuffled],
        iris_y[shuffled],
        iris_names[shuffled],
    )
    data = {
        "cancer": cancer_X,
        "iris": iris_frame,
        "diabetes": diabetes_X,
        "forest": cancer_X,
        "iris-names": iris_frame,
    }
    fitted = {
        "cancer": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
            cancer_X, cancer_y
        ),
        "iris": LogisticRegression(max_iter=1000).fit(iris_frame.to_numpy(), iris_y),
        "diabetes": Ridge(alpha=0.5).fit(diabetes_X, diabetes_y),
        "forest": RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(
            cancer_X, cancer_y
        ),
        # Class labels that are strings, as in most real classifiers.
        "iris-names": LogisticRegression(max_iter=1000).fit(iris_frame.to_numpy(), iris_names),
    }
    return data, fitted


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    root = tmp_path_factory.mktemp("serving-project")
    init_project(root)
    settings = load_settings(cwd=root, environ={}, create=False)
    data, fitted = _fit_zoo()
    made = Zoo(root=root, settings=settings, data=data, fitted=fitted)
    with made.client() as client:
        for name, model in fitted.items():
            example = data[name].iloc[:5]
            version = client.register_model(
                model,
                name,
                input_example=example if hasattr(model, "feature_names_in_") else example.values,
            )
            made.columns[name] = [c.name for c in version.signature.inputs]
            assert made.columns[name] == list(data[name].columns)
    return made


@pytest.fixture(scope="session")
def dev_server(zoo: Zoo) -> Iterator[RunningServer]:
    """Serves everything dev holds: several models, so /invocations is ambiguous."""
    with running_server(zoo.settings, ServeOptions(environment="dev")) as server:
        yield server


@pytest.fixture(scope="session")
def cancer_server(zoo: Zoo) -> Iterator[RunningServer]:
    """Serves one fixed version, so MLflow's /invocations knows which model to use."""
    with running_server(zoo.settings, ServeOptions(references=("cancer:1",))) as server:
        yield server


def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): float(v) for k, v in row.items()} for row in rows.to_dict("records")]


def clean_environ() -> dict[str, str]:
    """The test's environment without MODELRAIL_* settings, for ``modelrail`` processes."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    return {**clean, "COLUMNS": "400", "NO_COLOR": "1"}

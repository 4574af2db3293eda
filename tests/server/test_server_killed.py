"""A team server killed mid-request loses nothing it acknowledged, and the client's retries
add nothing twice: ``modelrail server`` is SIGKILLed again and again while a run logs metrics
through ``RemoteClient``; every point the client was told is stored is there exactly once."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.remote.client import RemoteClient
from tests.server.conftest import HOST
from tests.server.test_cli import MODELRAIL, free_port

KILLS = 4
POINTS = 300


class Server:
    """``modelrail server`` over one SQLite store, restartable on the same port."""

    def __init__(self, store: str, port: int) -> None:
        self.store, self.port = store, port
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
        self.process = subprocess.Popen(
            [MODELRAIL, "server", "--store", self.store, "--port", str(self.port)],
            cwd="/",
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        assert f"{HOST}:{self.port}" in self.process.stdout.readline()
        deadline = time.monotonic() + 20
        while True:  # the address is printed as uvicorn starts; wait until it answers
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline, "the server did not open its port"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.mark.slow
def test_metrics_logged_while_the_server_is_killed_are_stored_once_each(tmp_path: Path) -> None:
    init_project(tmp_path)
    store = f"sqlite:///{tmp_path / '.modelrail' / 'modelrail.db'}"
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(store_url=store, settings=settings, user="admin") as local:
        local.add_user("mia", ["member"])
        _, secret = local.create_token("mia")
    server = Server(store, free_port())
    server.start()
    acknowledged: list[int] = []
    failures: list[BaseException] = []
    client = RemoteClient(f"http://{HOST}:{server.port}", secret, settings=settings)
    run = client.start_run("killed")

    def log() -> None:
        try:
            for step in range(POINTS):
                run.log_metric("loss", float(step), step=step)
                acknowledged.append(step)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    writer = threading.Thread(target=log, daemon=True)
    writer.start()
    try:
        for _ in range(KILLS):
            time.sleep(0.4)
            server.kill()
            time.sleep(0.2)
            server.start()  # within the client's retries (about 15 s)
        writer.join(timeout=120)
        assert not writer.is_alive(), "the writer did not finish"
        run.end()
    finally:
        server.kill()
    assert failures == []
    assert acknowledged == list(range(POINTS))
    with Client(store_url=store, settings=settings) as local:
        steps = [p.step for p in local.metric_history(run.id, "loss")]
        assert local.get_run(run.id).status == "finished"
    assert sorted(steps) == list(range(POINTS))  # each acknowledged point once, none twice


class LosingProxy:
    """A TCP proxy on 127.0.0.1 that passes each request to the server and, for every
    ``every``-th request whose first line holds ``needle``, drops the server's answer: the
    server has acted, the client never hears so, as when a connection breaks at that moment."""

    def __init__(self, target_port: int, needle: bytes, every: int) -> None:
        self.target_port, self.needle, self.every = target_port, needle, every
        self.listener = socket.create_server((HOST, 0))
        self.port = int(self.listener.getsockname()[1])
        self.seen = 0
        self.dropped = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            # A server not up (yet): the client sees a dropped connection.
            with conn, contextlib.suppress(OSError):
                self._relay(conn)

    def _relay(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(65536)
            if not chunk:
                return
            request += chunk
        head, _, body = request.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            body += conn.recv(65536)
        # One request a connection: the server is asked to close after its answer, which
        # the proxy then reads to the end (a client's kept-alive connection sees it close).
        head = b"\r\n".join(
            line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")
        )
        head += b"\r\nConnection: close"
        with socket.create_connection((HOST, self.target_port), timeout=10) as upstream:
            upstream.sendall(head + b"\r\n\r\n" + body)
            answer = b""
            while chunk := upstream.recv(65536):
                answer += chunk
        if self.needle in head.split(b"\r\n")[0]:
            self.seen += 1
            if self.seen % self.every == 0:
                self.dropped += 1
                return  # the server acted; its answer never reaches the client
        conn.sendall(answer)

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=5)
        self.listener.close()


def test_metrics_whose_answers_are_lost_are_stored_once_each(tmp_path: Path) -> None:
    init_project(tmp_path)
    store = f"sqlite:///{tmp_path / '.modelrail' / 'modelrail.db'}"
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(store_url=store, settings=settings, user="admin") as local:
        local.add_user("mia", ["member"])
        _, secret = local.create_token("mia")
    server = Server(store, free_port())
    server.start()
    proxy = LosingProxy(server.port, b"/metrics", every=3)
    try:
        client = RemoteClient(f"http://{HOST}:{proxy.port}", secret, settings=settings)
        with client.start_run("lossy") as run:
            for step in range(30):
                run.log_metric("loss", float(step), step=step)
    finally:
        proxy.close()
        server.kill()
    assert proxy.dropped >= 10
    with Client(store_url=store, settings=settings) as local:
        steps = [p.step for p in local.metric_history(run.id, "loss")]
    assert sorted(steps) == list(range(30))

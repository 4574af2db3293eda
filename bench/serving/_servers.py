"""Starting one server at a time in its own process group, checking its answer, stopping it.

Every process started here is remembered until its whole group is gone, so ``stop_all``
(called from a ``finally`` and on SIGTERM) leaves nothing running or listening.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

HOST = "127.0.0.1"
_live: dict[int, subprocess.Popen[bytes]] = {}
used_ports: list[int] = []
pids: dict[int, int] = {}  # port -> the process listening on it (while it runs)


@dataclass(frozen=True)
class Server:
    key: str  # short id, used by --only and in the JSON
    label: str  # what the table shows
    command: list[str]  # with {port} where the port goes
    path: str
    body: bytes
    env: dict[str, str]
    cwd: Path
    checks_prediction: bool = True
    startup_timeout_s: float = 120.0
    notes: list[str] = field(default_factory=list)


class ServerError(Exception):
    pass


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the run through ``finally`` blocks, which stop every server."""

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)


def warn_if_busy(load: str) -> None:
    if float(load.split()[0]) > 0.5:
        print(
            f"warning: load average {load} before starting: other work is running, "
            "so the figures will be lower and noisier than on an idle machine"
        )


def uvicorn(venv: Path, apps: Path, target: str) -> list[str]:
    """``target`` (module:app in ``apps``) on ``venv``'s uvicorn as the benchmarks run every
    ASGI app: uvloop, httptools, no access log, {port} to be filled in."""
    options = f"--host {HOST} --port {{port}} --loop uvloop --http httptools --no-access-log "
    options += "--log-level warning"
    return [str(venv / "bin" / "uvicorn"), "--app-dir", str(apps), target, *options.split()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    used_ports.append(port)
    return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def post(port: int, path: str, body: bytes, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def running(server: Server, log_dir: Path, expected: Any) -> Iterator[int]:
    """Start ``server`` on a free port, wait until it answers correctly, yield the port."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in server.command]
    log_path = log_dir / f"{server.key}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=server.cwd,
            env=server.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers and children die with it
        )
    _live[process.pid] = process
    pids[port] = process.pid
    try:
        _wait_until_correct(server, port, process, log_path, expected)
        yield port
    finally:
        pids.pop(port, None)
        stop(process)
        if listening(port):
            raise ServerError(f"{server.label}: port {port} still listening after stop")


def _wait_until_correct(
    server: Server, port: int, process: subprocess.Popen[bytes], log: Path, expected: Any
) -> None:
    deadline = time.monotonic() + server.startup_timeout_s
    while True:
        if process.poll() is not None:
            raise ServerError(f"{server.label} exited ({process.returncode}):\n{_tail(log)}")
        try:
            status, body = post(port, server.path, server.body)
        except OSError:
            status, body = 0, b""
        if status == 200:
            break
        if time.monotonic() > deadline:
            shown = f"HTTP {status}: {body[:300]!r}" if status else "no answer"
            raise ServerError(
                f"{server.label} not ready after {server.startup_timeout_s:.0f} s "
                f"({shown}):\n{_tail(log)}"
            )
        time.sleep(0.25)
    if server.checks_prediction:
        answer = json.loads(body)["predictions"][0]
        if answer != expected:
            raise ServerError(
                f"{server.label} predicted {answer!r}; scikit-learn says {expected!r}"
            )


def _tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after 10 s; wait until the group is empty."""
    pgid = process.pid  # start_new_session: the group id is the leader's pid
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid):
            process.poll()
            time.sleep(0.1)
        if not _group_alive(pgid):
            break
    process.poll()
    _live.pop(process.pid, None)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_all() -> None:
    for process in list(_live.values()):
        stop(process)


def still_listening() -> list[int]:
    return [port for port in used_ports if listening(port)]


def cpu_seconds(port: int) -> float:
    """User + system CPU seconds used so far by the server on ``port`` (all its threads)."""
    fields = Path(f"/proc/{pids[port]}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are the 14th and 15th fields; the text after ")" starts at the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

"""The server scenario of bench/tracking.py: 8 client processes logging runs and metrics over
HTTP into ``modelrail server`` and into ``mlflow server``, each on its default SQLite store.

For each side, in turn (never both servers at once): a fresh temporary folder, the server
started as a subprocess on a free port of 127.0.0.1 and waited for until ``GET /health``
answers, then ``CLIENTS`` processes of ``_server_client.py`` with that side's Python. Each
client warms up (one untimed run in another experiment) and says it is ready; when all are,
the driver releases them at once. The figure is operations (runs created + metrics logged)
per second of wall time from the first client's start to the last one's end. Afterwards the
server is stopped and the store is read through the side's own API: every run, param and
metric point must be there, or the row is marked as losing writes. The server is stopped
within ``STOP_TIMEOUT_S`` (SIGTERM, then SIGKILL to its process group), also on error.

modelrail's server needs a user and a personal API token: ``modelrail users add bench
--role admin`` and ``modelrail tokens create --user bench`` against the same store first. It
runs with ``--workers 2`` (one process per core of the 2-core machine the figures come from);
MLflow's runs with its defaults (``mlflow server --backend-store-uri sqlite:///...``, which
starts 4 worker processes). The profiled rerun runs modelrail's server as one process, so that
cProfile sees every request.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT

BENCH = ROOT / "bench"
CLIENT = BENCH / "_server_client.py"
PROFILER = BENCH / "_server_profile.py"
MODELRAIL_BIN = ROOT / ".venv" / "bin"
MLFLOW_BIN = BENCH / ".envs" / "mlflow" / "bin"
PYTHON = {"modelrail": MODELRAIL_BIN / "python", "mlflow": MLFLOW_BIN / "python"}
HOST = "127.0.0.1"
CLIENTS = 8
PARAMS_PER_RUN = 5  # as _server_client.PARAMS_PER_RUN
SERVER_TARGET = 10.0  # modelrail's operations per second, as a multiple of MLflow's
READY_TIMEOUT_S = 180.0  # a server answering /health, or every client warmed up
CLIENT_TIMEOUT_S = 1200.0  # all clients done after the start
STOP_TIMEOUT_S = 15.0  # SIGTERM to exit; then SIGKILL
USER = "bench"
MODELRAIL_WORKERS = 2  # modelrail server --workers (the profiled rerun: one process)
METHOD = (
    f"server: {CLIENTS} client processes per side, each logging RUNS runs (start_run, "
    f"{PARAMS_PER_RUN} params in one log_params call, METRICS log_metric('loss', v, step=i) "
    "calls, end) into the experiment 'bench' over HTTP; operations = runs created + metrics "
    "logged, per second of wall time from the first client's start to the last one's end "
    "(each client imported its library and logged one warm-up run first, untimed)",
    f"server: modelrail server --store sqlite:///... --artifacts DIR --workers "
    f"{MODELRAIL_WORKERS}, with a token of the admin 'bench' in MODELRAIL_TOKEN; mlflow server "
    "--backend-store-uri sqlite:///... with its defaults (4 worker processes); both on "
    "127.0.0.1, one side at a time",
)


@dataclass
class ServerSide:
    """One side's measurement."""

    side: str
    seconds: float
    operations: int
    clients: list[dict[str, Any]]
    counted: dict[str, Any]
    expected: dict[str, int]
    server_cpu_s: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds

    @property
    def complete(self) -> bool:
        return all(self.counted.get(key) == value for key, value in self.expected.items())


# -- processes ---------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without either side's settings; the servers are reached
    directly, never through a proxy the environment names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELRAIL_", "MLFLOW_"))}
    return env | {"NO_PROXY": HOST, "no_proxy": HOST} | extra


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers(url: str) -> bool:
    try:
        with DIRECT.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def group_members(group: int) -> Iterator[tuple[int, list[str]]]:
    """The processes of process group ``group``: pid and the fields of /proc/PID/stat from
    the third on (``fields[2]`` is the group)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == group:
            yield int(stat.parent.name), fields


def group_cpu_seconds(group: int) -> float | None:
    """User + system CPU seconds of the live processes in process group ``group``."""
    ticks = sum(int(f[11]) + int(f[12]) for _, f in group_members(group))  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK") if ticks else None


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``STOP_TIMEOUT_S``."""
    group = process.pid  # started with start_new_session: its own group
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue
        if not any(group_members(group)):
            break
    if process.poll() is None:
        process.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def serving(
    cmd: list[str], port: int, cwd: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The server ``cmd`` started in its own process group, once ``/health`` answers."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers(f"http://{HOST}:{port}/health"):
            if process.poll() is not None:
                raise SystemExit(f"{cmd[0]} exited ({process.returncode}):\n{tail(log)}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{cmd[0]} did not answer in {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        yield process
    finally:
        stop(process)


def checked(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Standard output of ``cmd``; its output on failure."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(cmd)}")
    return done.stdout


# -- the two servers ---------------------------------------------------------------------------


@contextmanager
def modelrail_server(work: Path, profile: Path | None) -> Iterator[tuple[Any, dict[str, str]]]:
    """modelrail's server over a fresh store, with a user and token; yields the process and
    the clients' environment. With ``profile``, under ``_server_profile.py`` (cProfile in
    every thread), its statistics written there when it stops."""
    store = f"sqlite:///{(work / 'modelrail.db').as_posix()}"
    env = clean_env(MODELRAIL_HOME=str(work / "home"), MODELRAIL_STORE=store)
    cli = str(MODELRAIL_BIN / "modelrail")
    checked([cli, "users", "add", USER, "--role", "admin"], work, env)
    secret = checked([cli, "tokens", "create", "--user", USER, "--label", "bench"], work, env)
    port = free_port()
    args = ["server", "--store", store, "--artifacts", str(work / "artifacts")]
    args += ["--host", HOST, "--port", str(port)]
    cmd = [cli, *args, "--workers", str(MODELRAIL_WORKERS)]
    if profile is not None:
        cmd = [str(PYTHON["modelrail"]), str(PROFILER), str(profile), *args]
    with serving(cmd, port, work, env, work / "server.log") as process:
        yield (
            process,
            clean_env(
                MODELRAIL_HOME=str(work / "client-home"),
                MODELRAIL_SERVER=f"http://{HOST}:{port}",
                MODELRAIL_TOKEN=secret.strip(),
            ),
        )


@contextmanager
def mlflow_server(work: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    port = free_port()
    store = f"sqlite:///{(work / 'mlflow.db').as_posix()}"
    env = clean_env(MLFLOW_DISABLE_TELEMETRY="true")
    cmd = [str(MLFLOW_BIN / "mlflow"), "server", "--backend-store-uri", store]
    cmd += ["--host", HOST, "--port", str(port)]
    with serving(cmd, port, work, env, work / "server.log") as process:
        yield (
            process,
            clean_env(MLFLOW_TRACKING_URI=f"http://{HOST}:{port}", MLFLOW_DISABLE_TELEMETRY="true"),
        )


def count_env(side: str, work: Path) -> dict[str, str]:
    """The environment reading the store directly, after the server has stopped."""
    if side == "modelrail":
        store = f"sqlite:///{(work / 'modelrail.db').as_posix()}"
        return clean_env(MODELRAIL_HOME=str(work / "home"), MODELRAIL_STORE=store)
    store = f"sqlite:///{(work / 'mlflow.db').as_posix()}"
    return clean_env(MLFLOW_TRACKING_URI=store, MLFLOW_DISABLE_TELEMETRY="true")


# -- clients -----------------------------------------------------------------------------------


class Client:
    """One client process; a thread reads its standard output into a queue, line by line
    (MLflow's client prints lines of its own), so the driver can wait with a deadline."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.lines.put(line)
        self.lines.put(None)

    def next_result(self, deadline: float) -> dict[str, Any]:
        """The next JSON line the client prints, by ``deadline`` (monotonic)."""
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise SystemExit(f"a client did not answer in time:\n{tail(self.log)}") from None
        if line is None:
            self.process.wait(timeout=STOP_TIMEOUT_S)
            raise SystemExit(f"a client exited ({self.process.returncode}):\n{tail(self.log)}")
        found: dict[str, Any] = json.loads(line)
        return found

    def start(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self.process.stdin.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)


def run_clients(
    side: str, env: dict[str, str], work: Path, runs: int, metrics: int, server: int
) -> tuple[list[dict[str, Any]], float | None]:
    """Start the clients, the first alone (it creates the experiments), release them together
    once all are warmed up; return each one's result and the CPU seconds the server's
    processes (the process group ``server``) used meanwhile."""
    folder = work / "clients"
    folder.mkdir()
    clients: list[Client] = []
    with ExitStack() as cleanup:

        def launch(index: int) -> Client:
            cmd = [str(PYTHON[side]), str(CLIENT), side, "client", str(runs), str(metrics)]
            client = Client([*cmd, str(index)], folder, env, folder / f"client-{index}.log")
            cleanup.callback(client.kill)
            clients.append(client)
            return client

        deadline = time.monotonic() + READY_TIMEOUT_S
        launch(0).next_result(deadline)
        for client in [launch(index) for index in range(1, CLIENTS)]:
            client.next_result(deadline)
        before = group_cpu_seconds(server)
        for client in clients:
            client.start()
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        results = [client.next_result(deadline) for client in clients]
        after = group_cpu_seconds(server)
        for client in clients:
            if client.process.wait(timeout=STOP_TIMEOUT_S) != 0:
                code = client.process.returncode
                raise SystemExit(f"a client failed ({code}):\n{tail(client.log)}")
    return results, None if before is None or after is None else after - before


# -- one side ------------------------------------------------------------------------------------


def measure(side: str, runs: int, metrics: int, profile: Path | None = None) -> ServerSide:
    """``CLIENTS`` clients of ``runs`` runs of ``metrics`` points against ``side``'s server."""
    with tempfile.TemporaryDirectory(prefix=f"bench-server-{side}-") as tmp:
        work = Path(tmp)
        started = modelrail_server(work, profile) if side == "modelrail" else mlflow_server(work)
        with started as (process, env):
            clients, cpu = run_clients(side, env, work, runs, metrics, process.pid)
        counted = json.loads(
            checked(
                [str(PYTHON[side]), str(CLIENT), side, "count", str(metrics)],
                work,
                count_env(side, work),
            ).splitlines()[-1]
        )
    total_runs = CLIENTS * runs
    expected = {
        "runs": total_runs,
        "finished": total_runs,
        "params": total_runs * PARAMS_PER_RUN,
        "metrics": total_runs * metrics,
        "complete": total_runs,
    }
    seconds = max(c["end"] for c in clients) - min(c["start"] for c in clients)
    return ServerSide(
        side=side,
        seconds=seconds,
        operations=total_runs * (1 + metrics),
        clients=[
            {
                "seconds": round(c["end"] - c["start"], 3),
                "cpu_s": round(c["cpu_s"], 3),
                "late_start_s": round(c["start"] - min(x["start"] for x in clients), 3),
            }
            for c in clients
        ],
        counted=counted,
        expected=expected,
        server_cpu_s=cpu,
    )

"""The load generator: Debian's wrk with a Lua script that POSTs one fixed JSON body."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

HOST = "127.0.0.1"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_LATENCY = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Load:
    connections: int
    threads: int
    seconds: int


@dataclass(frozen=True)
class Result:
    connections: int
    threads: int
    seconds: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    socket_detail: str
    server_cpu_s: float | None = None  # the server's CPU seconds during the measured run

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or self.requests == 0:
            return None
        return self.server_cpu_s / self.requests * 1e6

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is missing: sudo apt-get install -y wrk")
    return found


def write_script(path: Path, body: bytes) -> None:
    text = body.decode()
    if "]==]" in text:
        raise ValueError("body cannot be quoted in a Lua long string")
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{text}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n',
        encoding="utf-8",
    )


def command(script: Path, port: int, path: str, load: Load) -> list[str]:
    return [
        wrk_path(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{load.seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        f"http://{HOST}:{port}{path}",
    ]


def drive(
    script: Path,
    port: int,
    path: str,
    load: Load,
    warmup_s: int,
    cpu: Callable[[], float] | None = None,
) -> Result:
    """A warm-up run (discarded), then the measured one; with ``cpu`` (the server's CPU
    seconds so far), also the server's CPU time during the measured run."""
    if warmup_s > 0:
        warm = Load(load.connections, load.threads, warmup_s)
        subprocess.run(command(script, port, path, warm), capture_output=True, check=True)
    before = cpu() if cpu is not None else 0.0
    done = subprocess.run(
        command(script, port, path, load), capture_output=True, text=True, check=True
    )
    result = parse(done.stdout, load)
    if cpu is None:
        return result
    return replace(result, server_cpu_s=cpu() - before)


def parse(output: str, load: Load) -> Result:
    latencies = {int(p): float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(output)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None or 50 not in latencies or 99 not in latencies:
        raise ValueError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_counts = [int(n) for n in sockets.groups()] if sockets else [0, 0, 0, 0]
    detail = "connect {}, read {}, write {}, timeout {}".format(*socket_counts) if sockets else ""
    return Result(
        connections=load.connections,
        threads=load.threads,
        seconds=load.seconds,
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        p50_ms=latencies[50],
        p99_ms=latencies[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(socket_counts),
        socket_detail=detail,
    )

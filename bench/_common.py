"""Helpers shared by the benchmarks in bench/: subprocesses, timing, the machine's description."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"command failed ({done.returncode}): {shlex.join(cmd)}")
    return done.stdout + done.stderr


def wall(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    run(cmd, cwd=cwd, env=env)
    return time.perf_counter() - start


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), "")
    mem_kb = next(int(ln.split()[1]) for ln in meminfo if ln.startswith("MemTotal"))
    try:
        system = platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        system = platform.system()
    return {
        "cpu": cpu or platform.processor(),
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024**2:.1f} GiB",
        "python": platform.python_version(),
        "os": f"{system}, kernel {platform.release()}",
        "load": load_average(),
    }


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def command_line() -> str:
    exe = Path(sys.executable)
    shown = exe.relative_to(ROOT) if exe.is_relative_to(ROOT) else exe
    return shlex.join([str(shown), *sys.argv])


def source_files() -> dict[str, str]:
    """sha256 of every file under src/modelrail, which may hold uncommitted edits."""
    files = sorted(p for p in (ROOT / "src" / "modelrail").rglob("*") if p.is_file())
    return {
        p.relative_to(ROOT).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if "__pycache__" not in p.parts
    }


def source_state(files: dict[str, str]) -> str:
    """The git commit (if any) and one digest over ``files``."""
    digest = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in files.items()).encode())
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    commit = head.stdout.strip() if head.returncode == 0 else "none"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    edits = " + uncommitted edits" if dirty else ""
    return f"commit {commit}{edits}, src sha256 {digest.hexdigest()[:12]}"


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def write_results(path: Path, document: dict[str, Any]) -> None:
    """The run's figures as JSON (the folder is made when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

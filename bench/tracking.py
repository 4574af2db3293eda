"""Tracking benchmark: modelrail against MLflow 3, same machine, same workload, one invocation.

    .venv/bin/python bench/tracking.py [--quick] [--only SCENARIO,...] [--no-profile]

SCENARIO: log_metric, create_runs, tracker, import, server (default: all of them).

Every scenario runs in fresh subprocesses: modelrail with .venv/bin/python, MLflow with
bench/.envs/mlflow (created here if missing), each in its own temporary folder with its
default SQLite store. The server scenario runs each side's server (``modelrail server``,
``mlflow server``) on 127.0.0.1 with 8 client processes (see _server_tracking.py). Results
are printed and written to bench/.work/tracking-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _server_tracking
from _common import (
    ROOT,
    changed_files,
    command_line,
    load_average,
    machine,
    median_of,
    run,
    source_files,
    source_state,
    wall,
    write_results,
)

BENCH = ROOT / "bench"
RESULTS = BENCH / ".work" / "tracking-results.json"
MLFLOW_ENV = BENCH / ".envs" / "mlflow"
MODELRAIL_BIN = ROOT / ".venv" / "bin"
PYTHON = {"modelrail": MODELRAIL_BIN / "python", "mlflow": MLFLOW_ENV / "bin" / "python"}
WORKER = {"modelrail": BENCH / "_modelrail_tracking.py", "mlflow": BENCH / "_mlflow_tracking.py"}
SPEEDUP_TARGET = 20.0
TRACKER_TARGET_S = 0.5
IMPORT_TARGET_S = 0.3
SCENARIOS = ("log_metric", "create_runs", "tracker", "import", "server")
# The server scenario's clients each log RUNS runs of METRICS points (full run, --quick).
SERVER_COUNTS = {False: (6, 30), True: (2, 10)}
PROFILE = BENCH / ".work" / "tracking-server.prof"
METHOD_NOTES = (
    "log_metric: ms per call after one warm-up call, median of 3 fresh processes per side",
    "create runs: ms per run (10 params + 5 metrics) after one warm-up run, 1 process",
    "tracker CLI: `modelrail runs --limit 50` vs `mlflow runs list` (which has no limit option "
    "and prints its store's default page of 1,000 runs); median of 3 after a warm-up",
    "tracker in-process: Client(...) + tracker() vs mlflow.search_runs(max_results=50), "
    "first and second call in a fresh process",
    "MLflow subprocesses run with MLFLOW_DISABLE_TELEMETRY=true (no network here)",
    "speedup: MLflow's time / modelrail's; for the server, modelrail's ops/s / MLflow's",
)
notes: list[str] = []


@dataclass
class Row:
    scenario: str
    unit: str  # "ms" or "s" (less is better) or "ops/s" (more is better)
    modelrail: float | None
    mlflow: float | None
    target: str = ""
    passed: bool | None = None

    @classmethod
    def of(cls, scenario: str, unit: str, values: dict[str, Any], target: str = "") -> Row:
        return cls(scenario, unit, values.get("modelrail"), values.get("mlflow"), target)

    @property
    def ratio(self) -> float | None:
        """How many times faster modelrail is."""
        if self.modelrail is None or self.mlflow is None or 0 in (self.modelrail, self.mlflow):
            return None
        if self.unit == "ops/s":
            return self.modelrail / self.mlflow
        return self.mlflow / self.modelrail


def side_env(side: str, workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELRAIL_", "MLFLOW_"))}
    if side == "modelrail":
        env["MODELRAIL_HOME"] = str(workdir)
        env["MODELRAIL_STORE"] = f"sqlite:///{(workdir / '.modelrail' / 'modelrail.db').as_posix()}"
    else:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{(workdir / 'mlflow.db').as_posix()}"
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def worker(side: str, scenario: str, workdir: Path, count: int) -> dict[str, Any]:
    cmd = [str(PYTHON[side]), str(WORKER[side]), scenario, str(workdir), str(count)]
    output = run(cmd, cwd=workdir, env=side_env(side, workdir))
    lines = [line for line in output.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@contextmanager
def fresh_dir(side: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{side}-") as tmp:
        yield Path(tmp)


# -- setup -----------------------------------------------------------------------------------


def ensure_mlflow() -> str:
    """Create bench/.envs/mlflow with MLflow 3 if needed; return e.g. 'mlflow 3.1.0'."""
    probe = (
        "import importlib.metadata as m, mlflow\n"
        "try: print('mlflow', m.version('mlflow'))\n"
        "except m.PackageNotFoundError: print('mlflow-skinny', m.version('mlflow-skinny'))"
    )
    python = str(PYTHON["mlflow"])
    if not PYTHON["mlflow"].exists():
        print(f"creating {MLFLOW_ENV.relative_to(ROOT)} ...", flush=True)
        run([sys.executable, "-m", "venv", str(MLFLOW_ENV)])
    check = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        print("installing mlflow>=3,<4 (a few minutes) ...", flush=True)
        pip = [python, "-m", "pip", "install", "--quiet"]
        full = subprocess.run([*pip, "mlflow>=3,<4"], check=False)
        if full.returncode != 0:
            notes.append("full mlflow failed to install: using mlflow-skinny (+ SQLAlchemy)")
            run([*pip, "mlflow-skinny>=3,<4", "sqlalchemy", "alembic"])
        check = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    name, version = check.stdout.split()
    if not version.startswith("3."):
        raise SystemExit(f"{MLFLOW_ENV} holds {name} {version}, not MLflow 3: delete it and rerun")
    return f"{name} {version}"


# -- scenarios -------------------------------------------------------------------------------


def per_item_ms(scenario: str, count: int, repeats: int) -> dict[str, float]:
    def once(side: str) -> float:
        with fresh_dir(side) as workdir:
            result = worker(side, scenario, workdir, count)
        return float(result["seconds"]) / count * 1000

    # Alternate the sides so a burst of load from elsewhere hits both alike.
    samples = [{side: once(side) for side in PYTHON} for _ in range(repeats)]
    for side in PYTHON:
        shown = ", ".join(f"{sample[side]:.3f}" for sample in samples)
        notes.append(f"{scenario} {side} samples: {shown} ms")
    return {side: statistics.median(s[side] for s in samples) for side in PYTHON}


def speed_row(scenario: str, ms: dict[str, float]) -> Row:
    row = Row.of(scenario, "ms", ms, f">= {SPEEDUP_TARGET:.0f}x MLflow")
    row.passed = (row.ratio or 0) >= SPEEDUP_TARGET
    return row


def modelrail_cli_exists() -> bool:
    probe = [str(MODELRAIL_BIN / "modelrail"), "runs", "--help"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def cli_wall(side: str, cmd: list[str], workdir: Path) -> float:
    """Median wall time of 3 runs of ``cmd`` after one untimed warm-up (bytecode, page cache)."""
    env = side_env(side, workdir)
    lines = run(cmd, cwd=workdir, env=env).splitlines()
    notes.append(f"{side} CLI printed {len(lines)} lines; first: {lines[0][:70]!r}")
    return median_of(3, lambda: wall(cmd, workdir, env))


def tracker_rows(count: int) -> list[Row]:
    with fresh_dir("modelrail") as mr_dir, fresh_dir("mlflow") as ml_dir:
        dirs = {"modelrail": mr_dir, "mlflow": ml_dir}
        filled = {side: worker(side, "populate", d, count) for side, d in dirs.items()}
        for side, info in filled.items():
            notes.append(
                f"{side}: populated {count} runs in {info['seconds']:.1f} s "
                f"with {info['method']} (setup, not timed)"
            )
        experiment = str(filled["mlflow"]["experiment_id"])
        ml_cli = [str(MLFLOW_ENV / "bin" / "mlflow"), "runs", "list", "--experiment-id", experiment]
        cli = {"mlflow": cli_wall("mlflow", ml_cli, ml_dir)}
        has_cli = modelrail_cli_exists()
        if has_cli:
            mr_cli = [str(MODELRAIL_BIN / "modelrail"), "runs", "--limit", "50"]
            cli["modelrail"] = cli_wall("modelrail", mr_cli, mr_dir)
        else:
            notes.append(
                "`modelrail runs` does not exist yet: the tracker target is judged on "
                "Client.tracker() in a fresh process (opening the store included)"
            )
        query = {side: worker(side, "query", d, count) for side, d in dirs.items()}
    target = f"< {TRACKER_TARGET_S} s (modelrail)"
    first = {side: result["first"] for side, result in query.items()}
    repeat = {side: result["repeat"] for side, result in query.items()}
    rows = [
        Row.of("tracker: CLI, fresh process", "s", cli, target if has_cli else ""),
        Row.of("tracker: in-process, first call", "s", first, "" if has_cli else target),
        Row.of("tracker: in-process, repeat call", "s", repeat),
    ]
    judged = rows[0] if has_cli else rows[1]
    judged.passed = judged.modelrail is not None and judged.modelrail < TRACKER_TARGET_S
    return rows


def import_seconds(side: str) -> tuple[float, float]:
    """Medians of 3: (``-X importtime`` cumulative, wall of ``python -c 'import X'``)."""
    python = str(PYTHON[side])
    with fresh_dir(side) as cwd:
        env = side_env(side, cwd)
        run([python, "-c", f"import {side}"], cwd=cwd, env=env)  # warm-up: bytecode cache

        def importtime() -> float:
            output = run([python, "-X", "importtime", "-c", f"import {side}"], cwd=cwd, env=env)
            for line in output.splitlines():
                fields = line.split("|")
                if len(fields) == 3 and fields[2].rstrip() == f" {side}":
                    return int(fields[1]) / 1e6
            raise SystemExit(f"no importtime line for {side}")

        cumulative = median_of(3, importtime)
        process = median_of(3, lambda: wall([python, "-c", f"import {side}"], cwd, env))
    return cumulative, process


def import_rows() -> list[Row]:
    times = {side: import_seconds(side) for side in PYTHON}
    cumulative = {side: pair[0] for side, pair in times.items()}
    row = Row.of("import: -X importtime cumulative", "s", cumulative, f"< {IMPORT_TARGET_S} s")
    row.passed = cumulative["modelrail"] < IMPORT_TARGET_S
    process = {side: pair[1] for side, pair in times.items()}
    return [row, Row.of("import: python -c 'import X' wall", "s", process)]


def server_rows(runs: int, metrics: int, profile: bool) -> tuple[list[Row], dict[str, Any]]:
    """8 clients over HTTP against each side's server, one side at a time; with ``profile``,
    a MISS has modelrail's side run once more under cProfile (every thread)."""
    notes.extend(_server_tracking.METHOD)
    sides = {side: _server_tracking.measure(side, runs, metrics) for side in PYTHON}
    per_second = {side: found.per_second for side, found in sides.items()}
    target = f">= {_server_tracking.SERVER_TARGET:.0f}x MLflow"
    row = Row.of(f"server: {_server_tracking.CLIENTS} clients", "ops/s", per_second, target)
    complete = all(found.complete for found in sides.values())
    row.passed = complete and (row.ratio or 0) >= _server_tracking.SERVER_TARGET
    details: dict[str, Any] = {}
    for side, found in sides.items():
        cpu = "n/a" if found.server_cpu_s is None else f"{found.server_cpu_s:.1f} s"
        clients_cpu = sum(c["cpu_s"] for c in found.clients)
        spans = [c["seconds"] for c in found.clients]
        arrived = "all arrived" if found.complete else f"LOST WRITES: expected {found.expected}"
        notes.append(
            f"server {side}: {found.operations} operations in {found.seconds:.2f} s = "
            f"{found.per_second:.1f} ops/s; clients took {min(spans):.2f}-{max(spans):.2f} s; "
            f"CPU meanwhile: server {cpu}, clients {clients_cpu:.1f} s (own process only); "
            f"store afterwards: {found.counted} ({arrived})"
        )
        details[side] = asdict(found) | {"per_second": found.per_second}
    if profile and not row.passed:
        print("server: modelrail missed its target; once more under cProfile ...", flush=True)
        PROFILE.parent.mkdir(parents=True, exist_ok=True)
        try:
            profiled = _server_tracking.measure("modelrail", runs, metrics, profile=PROFILE)
        except SystemExit as failed:  # the figures above stand without it
            notes.append(f"server: the profiled rerun failed: {failed}")
        else:
            details["profile"] = {
                "file": str(PROFILE.relative_to(ROOT)),
                "per_second_under_profile": profiled.per_second,
                "top": profile_top(PROFILE),
            }
    return [row], details


def profile_top(path: Path, count: int = 15) -> dict[str, list[str]]:
    """modelrail's functions by cumulative time (summed over the server's threads, waits
    for SQLite's write lock included) and every function by its own time (idle waits left
    out)."""
    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    src = str(ROOT / "src" / "modelrail")

    def shown(key: tuple[str, int, str], seconds: float, calls: int) -> str:
        file, line, name = key
        where = Path(file).relative_to(src).as_posix() if file.startswith(src) else file
        short = where if len(where) < 60 else "..." + where[-57:]
        return f"{seconds:8.2f} s {calls:7d} calls  {short}:{line}({name})"

    own = [(k, v) for k, v in entries.items() if k[0].startswith(src)]
    skipped = ("cli/", "server/app.py:route")
    by_cumulative = sorted(own, key=lambda kv: -kv[1][3])
    busy = [(k, v) for k, v in entries.items() if not idle(k)]
    by_own = sorted(busy, key=lambda kv: -kv[1][2])
    return {
        "modelrail, cumulative": [
            shown(k, v[3], v[1])
            for k, v in by_cumulative
            if not any(s in f"{k[0]}:{k[2]}" for s in skipped)
        ][:count],
        "all, own time (idle waits left out)": [shown(k, v[2], v[1]) for k, v in by_own[:count]],
    }


def idle(key: tuple[str, int, str]) -> bool:
    """Waiting for work: the worker threads on their queue's lock, the event loop (uvloop's,
    whose time cProfile gives to ``asyncio.Runner.run``) or a selector on its sockets."""
    file, _, name = key
    if name == "<method 'acquire' of '_thread.lock' objects>":
        return True
    if file.endswith("asyncio/runners.py") and name == "run":
        return True
    return name.startswith(("<method 'select' of", "<method 'poll' of"))


# -- report ----------------------------------------------------------------------------------


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "ops/s":
        return f"{value:,.1f}/s"
    return f"{value:.3f} ms" if unit == "ms" else f"{value:.3f} s"


def report(
    rows: list[Row],
    info: dict[str, str],
    mlflow: str,
    counts: dict[str, int],
    profile: dict[str, Any] | None = None,
) -> None:
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM")
    print(f"         Python {info['python']}, {info['os']}")
    print(f"         load average {info['load']} before the run, {load_average()} after")
    print(f"command: {command_line()}")
    print(f"versions: modelrail (.venv, editable; {info['source']}) vs {mlflow}, both on SQLite")
    print(f"counts: {counts}\n")
    header = f"{'scenario':<36} {'modelrail':>12} {'MLflow':>12} {'speedup':>10}  target"
    print(header)
    print("-" * (len(header) + 30))
    for row in rows:
        ratio = "n/a" if row.ratio is None else f"{row.ratio:.1f}x"
        verdict = {True: "PASS", False: "MISS", None: ""}[row.passed]
        target = f"{row.target} {verdict}".strip()
        line = f"{row.scenario:<36} {show(row.modelrail, row.unit):>12} "
        print(f"{line}{show(row.mlflow, row.unit):>12} {ratio:>10}  {target}")
    print("\nnotes:")
    for note in notes:
        print(f"  - {note}")
    if profile:
        print(
            f"\nprofile of modelrail's server ({profile['per_second_under_profile']:.1f} ops/s "
            f"under cProfile, every thread; {profile['file']}):"
        )
        for title, lines in profile["top"].items():
            print(f"  {title}:")
            for line in lines:
                print(f"    {line}")


def scenarios(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SCENARIOS)}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="counts / 10, for a smoke run")
    parser.add_argument(
        "--only", type=scenarios, default=list(SCENARIOS), help=f"some of {','.join(SCENARIOS)}"
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="do not profile the server when it misses"
    )
    args = parser.parse_args()
    # A SIGTERM unwinds like an error, so the servers' cleanup stops them.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    quick, only = args.quick, args.only
    scale = 10 if quick else 1
    counts = {"log_metric": 1000 // scale, "create_runs": 2000 // scale}
    counts["tracker_runs"] = 2000 if quick else 10000
    counts["server_runs_per_client"], counts["server_metrics_per_run"] = SERVER_COUNTS[quick]
    started = time.perf_counter()
    files = source_files()
    info = machine() | {"source": source_state(files)}
    mlflow = ensure_mlflow()
    notes.extend(METHOD_NOTES)
    rows: list[Row] = []
    server: dict[str, Any] = {}
    if "log_metric" in only:
        print(f"log_metric x{counts['log_metric']} ...", flush=True)
        ms = per_item_ms("log_metric", counts["log_metric"], repeats=3)
        rows.append(speed_row("log_metric (per call)", ms))
    if "create_runs" in only:
        print(f"create runs x{counts['create_runs']} ...", flush=True)
        ms = per_item_ms("create_runs", counts["create_runs"], repeats=1)
        rows.append(speed_row("create runs (per run)", ms))
    if "tracker" in only:
        print(f"tracker table over {counts['tracker_runs']} runs ...", flush=True)
        rows.extend(tracker_rows(counts["tracker_runs"]))
    if "import" in only:
        print("import time ...", flush=True)
        rows.extend(import_rows())
    if "server" in only:
        runs, metrics = SERVER_COUNTS[quick]
        print(
            f"server: {_server_tracking.CLIENTS} clients x {runs} runs x {metrics} metrics ...",
            flush=True,
        )
        server_found, server = server_rows(runs, metrics, profile=not args.no_profile)
        rows.extend(server_found)
    elapsed = time.perf_counter() - started
    notes.append(f"whole benchmark took {elapsed / 60:.1f} min")
    info["load_after"] = load_average()
    if changed := changed_files(files, source_files()):
        notes.append(f"src changed during the run: {', '.join(changed)}")
    report(rows, info, mlflow, counts, server.get("profile"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "command": command_line(),
        "quick": quick,
        "scenarios": only,
        "machine": info,
        "mlflow": mlflow,
        "counts": counts,
        "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
        "notes": notes,
        "server": server,
        "seconds": elapsed,
    }
    write_results(RESULTS, document)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""MLflow import benchmark: `modelrail import-mlflow` on a store of 10,000 runs x 100 steps.

    .venv/bin/python bench/mlflow_import.py [--quick] [--runs N] [--steps N] [--no-export-import]

Issue 18 item 7's target: importing an MLflow store of 10,000 runs with 100 metric steps
each finishes in under a minute, against the time MLflow's own export-import tool
(``mlflow-export-import``: export-experiments, then import-experiments into a fresh MLflow
store) takes on the same store, and against reading the store with MLflow's client (every
run and every metric's history). The store is generated in MLflow's schema
(``_mlflow_store.py``) with bench/.envs/mlflow (``tools/mlflow_env.py`` builds it; the
export-import tool is added to it on first use). Results go to
bench/.work/mlflow-import-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    command_line,
    load_average,
    machine,
    run,
    source_files,
    source_state,
    write_results,
)

RESULTS = ROOT / "bench" / ".work" / "mlflow-import-results.json"
TARGET_S = 60.0
MODELRAIL = ROOT / ".venv" / "bin" / "modelrail"
notes: list[str] = []


def mlflow_python() -> Path:
    out = run([sys.executable, str(ROOT / "tools" / "mlflow_env.py")])
    return Path(out.strip().splitlines()[-1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELRAIL_", "MLFLOW_"))}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


def timed(cmd: list[str], *, cwd: Path, env: dict[str, str], limit: float) -> tuple[float, str]:
    """Wall seconds of ``cmd`` and its output; (inf, reason) when it fails or runs too long."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired:
        return float("inf"), f"did not finish in {limit:.0f} s"
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return float("inf"), (done.stdout + done.stderr)[-1500:]
    return seconds, done.stdout


def export_import_tool(python: Path) -> bool:
    """mlflow-export-import in the MLflow virtualenv (installed on first use)."""
    probe = [str(python), "-c", "import mlflow_export_import.common.utils"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return True
    print("installing mlflow-export-import ...", flush=True)
    # tabulate: imported by the tool but missing from its declared dependencies (1.2.0).
    pip = [str(python), "-m", "pip", "install", "--quiet", "mlflow-export-import", "tabulate"]
    done = subprocess.run(pip, capture_output=True, text=True)
    if done.returncode != 0:
        notes.append(f"mlflow-export-import did not install: {done.stderr[-300:]}")
        return False
    return subprocess.run(probe, capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 runs instead of 10,000")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-export-import", action="store_true")
    parser.add_argument("--limit", type=float, default=1800, help="seconds per MLflow step")
    args = parser.parse_args()
    runs = args.runs or (1_000 if args.quick else 10_000)
    files_before = source_files()
    python = mlflow_python()
    version = run([str(python), "-c", "import mlflow; print(mlflow.__version__)"]).strip()
    results: dict[str, Any] = {"runs": runs, "steps": args.steps, "mlflow": version}
    results["limit_s"] = args.limit
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-import-") as tmp:
        work = Path(tmp)
        store = work / "mlflow.db"
        print(f"generating an MLflow store: {runs:,} runs x {args.steps} steps ...", flush=True)
        start = time.perf_counter()
        generated = run(
            [
                str(python),
                str(ROOT / "bench" / "_mlflow_store.py"),
                str(store),
                str(runs),
                str(args.steps),
            ],
            env=clean_env(),
        )
        results["generate_s"] = time.perf_counter() - start
        results["store_mb"] = store.stat().st_size / 1e6
        counts = [line for line in generated.splitlines() if line.startswith("{")][-1]
        notes.append(f"store generated in MLflow's schema: {counts}")

        project = work / "project"
        project.mkdir()
        run([str(MODELRAIL), "init"], cwd=project, env=clean_env())
        print("modelrail import-mlflow ...", flush=True)
        command = [str(MODELRAIL), "import-mlflow", f"sqlite:///{store}", "--json"]
        seconds, output = timed(command, cwd=project, env=clean_env(), limit=args.limit)
        summary = json.loads(output) if seconds != float("inf") else {}
        results["modelrail_s"] = seconds
        results["modelrail_summary"] = {
            k: summary.get(k) for k in ("runs_imported", "metric_points", "artifacts")
        }
        if (
            summary.get("runs_imported") != runs
            or summary.get("metric_points") != runs * args.steps
        ):
            notes.append(f"INCOMPLETE IMPORT: {output[-500:]}")
        again, output = timed(command, cwd=project, env=clean_env(), limit=args.limit)
        results["modelrail_again_s"] = again
        if json.loads(output).get("runs_imported") != 0:
            notes.append("the second import imported runs again")

        print("MLflow's client reads every run and history ...", flush=True)
        reader = [str(python), str(ROOT / "bench" / "_mlflow_read.py"), f"sqlite:///{store}"]
        seconds, output = timed(reader, cwd=work, env=clean_env(), limit=args.limit)
        results["mlflow_read_s"] = seconds
        if seconds != float("inf"):
            results["mlflow_read"] = json.loads(output.strip().splitlines()[-1])

        if not args.no_export_import and export_import_tool(python):
            bin_dir = python.parent
            exported = work / "exported"
            print("mlflow-export-import: export-experiments ...", flush=True)
            export_s, out = timed(
                [
                    str(bin_dir / "export-experiments"),
                    "--experiments",
                    "all",
                    "--output-dir",
                    str(exported),
                ],
                cwd=work,
                env=clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{store}"),
                limit=args.limit,
            )
            results["export_s"] = export_s
            import_s: float | None = None  # not run when the export did not finish
            if export_s != float("inf"):
                print("mlflow-export-import: import-experiments ...", flush=True)
                import_s, out = timed(
                    [str(bin_dir / "import-experiments"), "--input-dir", str(exported)],
                    cwd=work,
                    env=clean_env(MLFLOW_TRACKING_URI=f"sqlite:///{work / 'target.db'}"),
                    limit=args.limit,
                )
            results["import_s"] = import_s
            if import_s in (None, float("inf")):
                notes.append(f"mlflow-export-import: {out.strip()[-400:]}")
            results["export_import_s"] = export_s + (float("inf") if import_s is None else import_s)
    report(results, files_before)


def report(results: dict[str, Any], files_before: dict[str, str]) -> None:
    mr = results["modelrail_s"]
    rows = [
        ("modelrail import-mlflow", mr),
        ("  again (nothing new)", results["modelrail_again_s"]),
    ]
    rows.append(("MLflow client: read every run + history", results["mlflow_read_s"]))
    if "export_import_s" in results:
        rows.append(("mlflow-export-import: export", results["export_s"]))
        rows.append(("mlflow-export-import: import", results["import_s"]))
        rows.append(("mlflow-export-import: total", results["export_import_s"]))
    print()
    print(f"machine: {machine()}")
    print(f"command: {command_line()}")
    print(f"source: {source_state(source_files())}, MLflow {results['mlflow']}")
    print(
        f"store: {results['runs']:,} runs x {results['steps']} steps "
        f"({results['store_mb']:.0f} MB), generated in {results['generate_s']:.1f} s"
    )
    print()
    print("| step | seconds | vs modelrail |")
    print("|---|---|---|")
    limit = results["limit_s"]
    for name, seconds in rows:
        if seconds is None:
            print(f"| {name} | not run (the export did not finish) | |")
            continue
        if seconds == float("inf"):
            shown, ratio = f"> {limit:.0f} (stopped or failed)", f"> {limit / mr:.1f}x"
        else:
            shown, ratio = f"{seconds:.1f}", f"{seconds / mr:.1f}x"
        if name.startswith(("modelrail", "  ")):
            ratio = ""
        print(f"| {name} | {shown} | {ratio} |")
    verdict = "PASS" if mr < TARGET_S and not any("INCOMPLETE" in n for n in notes) else "MISS"
    print(f"\ntarget: under {TARGET_S:.0f} s: {verdict} ({mr:.1f} s)")
    changed = [k for k in source_files() if source_files().get(k) != files_before.get(k)]
    if changed:
        notes.append(f"files under src/modelrail changed during the run: {', '.join(changed)}")
    for note in notes:
        print(f"note: {note}")
    results.update(
        machine=machine(),
        command=command_line(),
        verdict=verdict,
        notes=notes,
        load_after=load_average(),
    )
    write_results(RESULTS, {k: (None if v == float("inf") else v) for k, v in results.items()})


if __name__ == "__main__":
    main()

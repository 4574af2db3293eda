"""Serving benchmark: modelrail against MLflow, BentoML, plain FastAPI and a FastAPI hello world,
one model, one machine, one invocation.

    .venv/bin/python bench/serving/run.py [--quick] [--only KEY,KEY]

Each server runs alone on 127.0.0.1 in its own process group, is checked to give
scikit-learn's prediction for the request's row, is driven by wrk with the same settings
(1, 8, 32 connections; 2 s warm-up, then 10 s, or 3 s with --quick) and is stopped.
Results are printed and written to bench/.work/serving-results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _envs import (
    APPS,
    ROOT,
    SetupError,
    clean_env,
    ensure_env,
    export,
    source_state,
    train,
    versions,
)
from _report import report, target_verdict
from _servers import (
    HOST,
    Server,
    ServerError,
    running,
    still_listening,
    stop_all,
    stop_on_signals,
    uvicorn,
    warn_if_busy,
)
from _wrk import Load, Result, drive, write_script

sys.path.insert(0, str(ROOT / "bench"))
from _common import command_line, load_average, machine, write_results

WORK = ROOT / "bench" / ".work"
RESULTS = WORK / "serving-results.json"
LOGS = WORK / "serving-logs"
WARMUP_S = 2
NOTES = (
    "one process each: uvicorn without --workers, `mlflow models serve -w 1`, "
    "@bentoml.service(workers=1), `modelrail serve` (default 1 worker)",
    "FastAPI apps: `async def` endpoints taking {inputs: [Row]} (pydantic model of the 30 "
    "columns), answering predictions and probabilities; BentoML: a sync @bentoml.api, "
    "records -> pandas -> predict_proba; MLflow: its pyfunc on dataframe_split",
    "access logs: off for uvicorn and modelrail; MLflow and BentoML keep their default "
    "per-request access log (written to bench/.work/serving-logs/)",
    "wrk and the server share the machine's cores; nothing is pinned",
)
ORDER: tuple[str, ...] = ("hello", "modelrail", "modelrail-2w", "fastapi-numpy")
ORDER += ("fastapi-pandas", "bentoml", "mlflow")


def on_path(venv: Path, **extra: str) -> dict[str, str]:
    env = clean_env(**extra)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return env


def build_servers(work: Path, only: set[str], problems: dict[str, str]) -> tuple[list[Server], Any]:
    print("training the model and registering it in a fresh modelrail project ...")
    model = train(work)
    native = json.dumps({"inputs": [model.row]}).encode()
    split = {"columns": model.columns, "data": [list(model.row.values())]}
    mlflow_body = json.dumps({"dataframe_split": split}).encode()
    modelrail_cmd = [str(ROOT / ".venv" / "bin" / "modelrail"), "serve", "--env", "dev"]
    project = work / "modelrail-project"
    predict = "/v1/models/bench-model/predict"
    servers: list[Server] = []

    def want(*keys: str) -> bool:
        return any(not only or k in only for k in keys)

    if want("hello", "fastapi-numpy", "fastapi-pandas"):
        fastapi = ensure_env("fastapi")
        app_env = on_path(
            fastapi, BENCH_MODEL=str(model.pickle_path), BENCH_COLUMNS=str(model.columns_path)
        )
        for key, label, target in (
            ("hello", "FastAPI hello world", "fastapi_hello:app"),
            ("fastapi-numpy", "FastAPI + numpy", "fastapi_sklearn:numpy_app"),
            ("fastapi-pandas", "FastAPI + pandas", "fastapi_sklearn:pandas_app"),
        ):
            command = uvicorn(fastapi, APPS, target)
            checks = key != "hello"
            servers.append(Server(key, label, command, "/predict", native, app_env, work, checks))
    for key, label, extra in (
        ("modelrail", "modelrail serve", []),
        ("modelrail-2w", "modelrail serve --workers 2", ["--workers", "2"]),
    ):
        command = [*modelrail_cmd, "--port", "{port}", *extra]
        servers.append(Server(key, label, command, predict, native, clean_env(), project))
    if want("bentoml"):
        try:
            bento = ensure_env("bentoml")
            env = on_path(bento, BENTOML_HOME=str(work / "bentoml"), BENTOML_DO_NOT_TRACK="true")
            export("bentoml", bento, model, work, env)
            command = [str(bento / "bin" / "bentoml"), "serve", "bento_service:BenchModel"]
            command += ["--working-dir", str(APPS), *f"--host {HOST} --port {{port}}".split()]
            servers.append(Server("bentoml", "BentoML", command, "/predict", native, env, work))
        except SetupError as exc:
            problems["bentoml"] = f"BentoML could not be set up here: {exc}"
    if want("mlflow"):
        mlflow = ensure_env("mlflow")
        env = on_path(mlflow, MLFLOW_DISABLE_TELEMETRY="true")
        export("mlflow", mlflow, model, work / "mlflow-model", env)
        command = [str(mlflow / "bin" / "mlflow"), "models", "serve"]
        command += ["-m", str(work / "mlflow-model"), "--env-manager", "local"]
        command += f"-h {HOST} -p {{port}} -w 1".split()
        servers.append(
            Server("mlflow", "mlflow models serve", command, "/invocations", mlflow_body, env, work)
        )
    chosen = [s for s in servers if not only or s.key in only]
    return sorted(chosen, key=lambda s: ORDER.index(s.key)), model


def loads_for(key: str, seconds: int) -> list[Load]:
    loads = [Load(1, 1, seconds), Load(8, 1, seconds), Load(32, 2, seconds)]
    return [x for x in loads if x.connections != 8] if key == "modelrail-2w" else loads


def bench(
    servers: list[Server], model: Any, seconds: int, work: Path, problems: dict[str, str]
) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {}
    LOGS.mkdir(parents=True, exist_ok=True)
    for server in servers:
        print(f"{server.label}: starting ...", flush=True)
        script = work / f"{server.key}.lua"
        write_script(script, server.body)
        started = time.monotonic()
        try:
            with running(server, LOGS, model.expected) as port:
                print(f"  ready and correct after {time.monotonic() - started:.1f} s")
                for load in loads_for(server.key, seconds):
                    result = drive(script, port, server.path, load, WARMUP_S)
                    results.setdefault(server.key, []).append(result)
                    print(
                        f"  {load.connections:>2} conn: {result.rps:>9,.0f} req/s  "
                        f"p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  "
                        f"errors {result.errors}",
                        flush=True,
                    )
        except ServerError as exc:
            problems[server.key] = str(exc)
            print(f"  FAILED: {exc}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per load instead of 10 s")
    parser.add_argument(
        "--only", default="", help="comma-separated server keys: " + ",".join(ORDER)
    )
    args = parser.parse_args()
    only = {k for k in args.only.split(",") if k}
    if unknown := only - set(ORDER):
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    seconds = 3 if args.quick else 10

    stop_on_signals()
    host = machine()
    warn_if_busy(host["load"])
    began = time.monotonic()
    source = source_state()
    problems: dict[str, str] = {}
    results: dict[str, list[Result]] = {}
    servers: list[Server] = []
    try:
        with tempfile.TemporaryDirectory(prefix="modelrail-serving-bench-") as tmp:
            servers, model = build_servers(Path(tmp), only, problems)
            results = bench(servers, model, seconds, Path(tmp), problems)
    finally:
        stop_all()
    leftover = still_listening()
    host["load_after"] = load_average()
    labels = {s.key: s.label for s in servers}
    verdict = target_verdict(results)
    text = report(host, command_line(), labels, results, problems, verdict, leftover)
    notes = list(NOTES)
    if source_state() != source:
        notes.append(f"src/modelrail changed during the run (at start: {source})")
    print(text + f"\nSource: {source}\nNotes:\n" + "\n".join(f"- {note}" for note in notes))
    document = {
        "machine": host,
        "command": command_line(),
        "source": source,
        "quick": args.quick,
        "seconds_per_load": seconds,
        "warmup_seconds": WARMUP_S,
        "wall_seconds": round(time.monotonic() - began, 1),
        "versions": versions(),
        "servers": {
            s.key: {"label": s.label, "command": s.command, "path": s.path} for s in servers
        },
        "results": {k: [{**asdict(r), "errors": r.errors} for r in v] for k, v in results.items()},
        "problems": problems,
        "notes": notes,
        "target": verdict,
        "still_listening": leftover,
    }
    write_results(RESULTS, document)
    print(f"written to {RESULTS.relative_to(ROOT)}; server logs in {LOGS.relative_to(ROOT)}/")
    if leftover:
        raise SystemExit(f"still listening after the run: {leftover}")


if __name__ == "__main__":
    main()

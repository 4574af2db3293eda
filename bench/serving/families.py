"""Serving benchmark by model family (issue 16, item 4): ``modelrail serve`` against a bare
ASGI hello world on the same uvicorn, a FastAPI hello world and a plain FastAPI app calling
each library, every figure from one run on one machine.

    .venv/bin/python bench/serving/families.py [--quick] [--families linear,forest,...]

Six families (see ``_families.py``) are trained, registered in a fresh modelrail project and
pickled. Four servers start on 127.0.0.1, each in its own process group, and each answer is
checked against the library's prediction before any load:

- ``asgi-hello``: a bare ASGI app (reads the body, answers a constant) on .venv's uvicorn
  with uvloop and httptools, as ``modelrail serve`` runs;
- ``fastapi-hello``: FastAPI's hello world (bench/.envs/fastapi);
- ``modelrail``: ``modelrail serve --env dev``, answering every family;
- ``fastapi-lib``: FastAPI, a pydantic row, numpy (pandas for text columns), ``predict_proba``.

The points are interleaved so drift on a shared machine hits every server alike: at 1, then
8 connections, the bare ASGI hello world, the FastAPI hello world, then for each family
modelrail and FastAPI + library, then the bare ASGI hello world again. Each point is ``wrk
-t1`` for a 1 s warm-up and 6 s measured (3 s with --quick); the server's CPU time during the
measured run is read from /proc. Results: printed, and bench/.work/serving-families.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from _envs import APPS, ROOT, clean_env, ensure_env, source_state, versions
from _families import FAMILIES, LABELS, Family, body, train_all
from _families_report import report, verdicts
from _servers import (
    Server,
    ServerError,
    cpu_seconds,
    post,
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
RESULTS = WORK / "serving-families.json"
LOGS = WORK / "serving-families-logs"
WARMUP_S = 1
CONNECTIONS = (1, 8)


def servers_for(work: Path, families: list[Family], baseline: Path | None) -> list[Server]:
    fastapi = ensure_env("fastapi")
    fastapi_env = clean_env(BENCH_FAMILIES=str(work / "families.json"))
    fastapi_env["PATH"] = f"{fastapi / 'bin'}:{fastapi_env.get('PATH', '')}"
    first = families[0]
    modelrail = [str(ROOT / ".venv" / "bin" / "modelrail"), "serve", "--env", "dev"]
    hello = b'{"hello":"world"}'
    extra = []
    if baseline is not None:  # the same command on another source tree, for before / after
        extra.append(
            Server(
                "modelrail-base",
                f"modelrail serve from {baseline}",
                [*modelrail, "--port", "{port}"],
                f"/v1/models/{first.model_name}/predict",
                body(first),
                clean_env(PYTHONPATH=str(baseline)),
                work / "project",
            )
        )
    return [
        Server(
            "asgi-hello",
            "bare ASGI hello world",
            uvicorn(ROOT / ".venv", APPS, "asgi_hello:app"),
            "/predict",
            hello,
            clean_env(),
            work,
            checks_prediction=False,
        ),
        Server(
            "fastapi-hello",
            "FastAPI hello world",
            uvicorn(fastapi, APPS, "fastapi_hello:app"),
            "/predict",
            hello,
            fastapi_env,
            work,
            checks_prediction=False,
        ),
        Server(
            "modelrail",
            "modelrail serve",
            [*modelrail, "--port", "{port}"],
            f"/v1/models/{first.model_name}/predict",
            body(first),
            clean_env(),
            work / "project",
        ),
        Server(
            "fastapi-lib",
            "FastAPI + library",
            uvicorn(fastapi, APPS, "fastapi_families:app"),
            f"/predict/{first.key}",
            body(first),
            fastapi_env,
            work,
        ),
        *extra,
    ]


def path_for(server: str, family: Family) -> str:
    if server.startswith("modelrail"):
        return f"/v1/models/{family.model_name}/predict"
    return f"/predict/{family.key}"


def check_answers(port: int, server: str, families: list[Family]) -> None:
    """Every family's endpoint answers the library's own prediction for the request's row."""
    for family in families:
        status, answer = post(port, path_for(server, family), body(family), timeout=30.0)
        if status != 200:
            raise ServerError(f"{server} {family.key}: HTTP {status}: {answer[:300]!r}")
        predicted = json.loads(answer)["predictions"][0]
        if predicted != family.expected:
            raise ServerError(f"{server} {family.key}: {predicted!r}, expected {family.expected!r}")


def predictors(port: int) -> dict[str, str]:
    """model name -> the predictor form modelrail serves it with (from GET /v1/models)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as reply:
        listed = json.loads(reply.read())["models"]
    return {m["name"]: m["predictor"] for m in listed}


SERVED_BY: dict[str, str] = {}

# (server key, family key or "" for the hello worlds) -> results, in the order measured
Points = dict[tuple[str, str], list[Result]]


def bench(servers: list[Server], families: list[Family], seconds: int, work: Path) -> Points:
    LOGS.mkdir(parents=True, exist_ok=True)
    ports: dict[str, int] = {}
    with ExitStack() as stack:
        for server in servers:
            expected = families[0].expected
            print(f"{server.label}: starting ...", flush=True)
            ports[server.key] = stack.enter_context(running(server, LOGS, expected))
            if server.key != "asgi-hello" and server.key != "fastapi-hello":
                check_answers(ports[server.key], server.key, families)
            if server.key == "modelrail":
                forms = predictors(ports[server.key])
                SERVED_BY.update({f.key: forms[f.model_name] for f in families})
                print(f"modelrail's predictors: {SERVED_BY}", flush=True)
        print(f"all ready and correct; {seconds} s per point, {WARMUP_S} s warm-up", flush=True)
        schedule = [("asgi-hello", None), ("fastapi-hello", None)]
        compared = [s.key for s in servers if s.key not in ("asgi-hello", "fastapi-hello")]
        for family in families:
            schedule += [(key, family) for key in compared]
        schedule.append(("asgi-hello", None))
        points: Points = {}
        for connections in CONNECTIONS:
            for key, family in schedule:
                server = next(s for s in servers if s.key == key)
                payload = body(family) if family is not None else server.body
                path = path_for(key, family) if family is not None else server.path
                script = work / f"{key}-{family.key if family else 'hello'}.lua"
                write_script(script, payload)
                port = ports[key]
                result = drive(
                    script,
                    port,
                    path,
                    Load(connections, 1, seconds),
                    WARMUP_S,
                    cpu=lambda port=port: cpu_seconds(port),  # type: ignore[misc]
                )
                points.setdefault((key, family.key if family else ""), []).append(result)
                shown = f"{server.label}{' / ' + LABELS[family.key] if family else ''}"
                print(
                    f"  {connections} conn  {shown:<58} {result.rps:>8,.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                    f"cpu {result.cpu_us_per_request or 0:7.1f} us/req  errors {result.errors}",
                    flush=True,
                )
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per point instead of 6 s")
    parser.add_argument("--families", default=",".join(FAMILIES), help=",".join(FAMILIES))
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also serve with modelrail imported from this src folder (PYTHONPATH), e.g. a "
        "copy of src/ with older serving files, measured beside the current one",
    )
    args = parser.parse_args()
    keys = tuple(k for k in args.families.split(",") if k)
    if unknown := set(keys) - set(FAMILIES):
        parser.error(f"unknown families: {', '.join(sorted(unknown))}")
    seconds = 3 if args.quick else 6

    stop_on_signals()
    host = machine()
    warn_if_busy(host["load"])
    began = time.monotonic()
    source = source_state()
    points: Points = {}
    try:
        with tempfile.TemporaryDirectory(prefix="modelrail-serving-families-") as tmp:
            work = Path(tmp)
            print(f"training and registering {', '.join(keys)} ...", flush=True)
            families = train_all(work, keys, work / "project")
            servers = servers_for(work, families, args.baseline_src)
            points = bench(servers, families, seconds, work)
    finally:
        stop_all()
    leftover = still_listening()
    host["load_after"] = load_average()
    checks = verdicts(points, keys)
    notes = []
    if source_state() != source:
        notes.append(f"src/modelrail changed during the run (at start: {source})")
    print(report(host, command_line(), source, points, keys, checks, leftover, notes))
    served = ", ".join(f"{k} {v}" for k, v in SERVED_BY.items())
    print(f"modelrail's predictor per family: {served}")
    document: dict[str, Any] = {
        "machine": host,
        "command": command_line(),
        "source": source,
        "seconds_per_point": seconds,
        "warmup_seconds": WARMUP_S,
        "wall_seconds": round(time.monotonic() - began, 1),
        "versions": versions(),
        "points": [
            {"server": server, "family": family, **asdict(r), "cpu_us": r.cpu_us_per_request}
            for (server, family), results in points.items()
            for r in results
        ],
        "checks": checks,
        "served_by": SERVED_BY,
        "notes": notes,
        "still_listening": leftover,
    }
    write_results(RESULTS, document)
    print(f"written to {RESULTS.relative_to(ROOT)}; server logs in {LOGS.relative_to(ROOT)}/")
    if leftover:
        raise SystemExit(f"still listening after the run: {leftover}")


if __name__ == "__main__":
    main()

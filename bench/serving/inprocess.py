"""modelrail's own CPU per request, without HTTP: the prediction server's ASGI app driven
in-process with the body wrk sends, timed, and optionally profiled.

    .venv/bin/python bench/serving/inprocess.py [--families linear,pipeline] [--requests N]
        [--profile cprofile|pyinstrument] [--project DIR] [--body records|split]

The app is built as ``modelrail serve --env dev`` builds it (``build_server``) over a
project holding the benchmark's families (trained and registered on first use, then reused
from ``--project``). Each request is one call of the app with ready-made ``receive`` and
``send`` coroutines; nothing awaits for real, so the coroutine runs to its end in one
``send(None)`` and the figure is the app's own work: routing, parsing, conversion, scoring,
metrics and response building. A bare ASGI app answering a constant, driven the same way,
gives the driver's own cost ("floor").

Timing: ``--rounds`` rounds of ``--requests`` requests per family after a warm-up; the
median round's CPU microseconds per request is printed (min and max show the spread).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _families import FAMILIES, Family, body, train_all

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROJECT = ROOT / "bench" / ".work" / "serving-inprocess"
Call = Callable[[], None]


def families_in(project_dir: Path, keys: tuple[str, ...]) -> list[Family]:
    """The families registered under ``project_dir``, trained there on first use."""
    listing = project_dir / "families.json"
    if listing.exists():
        found = {f["key"]: Family(**f) for f in json.loads(listing.read_text())}
        if set(keys) <= set(found):
            return [found[k] for k in keys]
        raise SystemExit(f"{project_dir} lacks {sorted(set(keys) - set(found))}: delete it")
    project_dir.mkdir(parents=True)
    print(f"training and registering {', '.join(FAMILIES)} in {project_dir} ...", flush=True)
    trained = train_all(project_dir, FAMILIES, project_dir / "project")
    return [f for f in trained if f.key in keys]


def scope_for(path: str, payload: bytes) -> dict[str, Any]:
    """What uvicorn's httptools protocol hands the app for wrk's request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"content-length", str(len(payload)).encode()),
            (b"content-type", b"application/json"),
        ],
        "state": {},
    }


def request_call(app: Any, path: str, payload: bytes, sent: list[dict[str, Any]]) -> Call:
    message = {"type": "http.request", "body": payload, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(reply: dict[str, Any]) -> None:
        sent.append(reply)

    def call() -> None:
        sent.clear()
        coroutine = app(scope_for(path, payload), receive, send)
        try:
            coroutine.send(None)
        except StopIteration:
            return
        raise RuntimeError("the app awaited something real")

    return call


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The bare ASGI hello world of the HTTP benchmark: read the body, answer a constant."""
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
    await send({"type": "http.response.body", "body": b'{"hello":"world"}'})


_HELLO_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"17")]


def timed(call: Call, requests: int, rounds: int) -> list[float]:
    """CPU microseconds per request of each round, after a warm-up round. The process's CPU
    time (every thread's), not the wall clock: on a shared machine the time other processes
    take the core is not counted, though what they do to the caches still is."""
    for _ in range(min(requests, 2000)):
        call()
    per_request = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            call()
        per_request.append((time.process_time() - started) / requests * 1e6)
    return per_request


def profiled(call: Call, requests: int, tool: str, label: str) -> str:
    for _ in range(min(requests, 2000)):
        call()
    if tool == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(requests):
            call()
        profiler.stop()
        return profiler.output_text(unicode=False, color=False, show_all=False)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(requests):
        call()
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats("tottime")
    stats.print_stats(25)
    return f"cProfile of {requests} requests, {label}:\n{out.getvalue()}"


def build_app(project: Path, families: list[Family]) -> Any:
    from modelrail import Client
    from modelrail.config import load_settings
    from modelrail.serving.server import ServeOptions, build_server

    client = Client(settings=load_settings(cwd=project, environ={}, create=False))
    only = tuple(f.model_name for f in families)
    return build_server(client, ServeOptions(environment="dev", only=only))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="linear,pipeline", help=",".join(FAMILIES))
    parser.add_argument("--requests", type=int, default=5000, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=("cprofile", "pyinstrument"), default=None)
    parser.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    parser.add_argument("--json", action="store_true", help="one JSON line of the figures")
    parser.add_argument(
        "--body", choices=("records", "split"), default="records", help="the request's shape"
    )
    args = parser.parse_args()
    keys = tuple(k for k in args.families.split(",") if k)
    if unknown := set(keys) - set(FAMILIES):
        parser.error(f"unknown families: {', '.join(sorted(unknown))}")
    families = families_in(args.project.resolve(), keys)
    built = build_app(args.project.resolve() / "project", families)
    sent: list[dict[str, Any]] = []
    calls: dict[str, Call] = {"floor": request_call(hello_app, "/predict", b"{}", sent)}
    for family in families:
        path = f"/v1/models/{family.model_name}/predict"
        call = request_call(built.app, path, body(family, args.body), sent)
        call()
        status = sent[0]["status"]
        answer = json.loads(sent[1]["body"])
        if status != 200 or answer["predictions"][0] != family.expected:
            raise SystemExit(f"{family.key}: HTTP {status}, {answer}")
        calls[family.key] = call
    figures: dict[str, float] = {}
    try:
        for label, call in calls.items():
            if args.profile and label != "floor":
                print(profiled(call, args.requests, args.profile, label))
                continue
            rounds = timed(call, args.requests, args.rounds)
            figures[label] = statistics.median(rounds)
            if not args.json:
                print(
                    f"{label:>10}: {figures[label]:7.1f} us CPU/request (median of {args.rounds} "
                    f"rounds of {args.requests}; min {min(rounds):.1f}, max {max(rounds):.1f})",
                    flush=True,
                )
    finally:
        built.close()
    if args.json:
        print(json.dumps({k: round(v, 2) for k, v in figures.items()}))


if __name__ == "__main__":
    main()

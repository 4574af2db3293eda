"""Where a prediction server's CPU goes under HTTP load: modelrail's app on uvicorn (uvloop,
httptools, as ``modelrail serve`` runs it) in this process, driven by wrk, with the event
loop thread's CPU time split into parsing, scoring, answer building, the two ``send`` calls
(uvicorn writing the response, the kernel's loopback and waking wrk included) and the rest.

    .venv/bin/python bench/serving/breakdown.py [--family linear] [--connections 8]
        [--seconds 8] [--fixed-scores] [--hello]

``--fixed-scores`` answers every request with the same precomputed scores (no predictor):
what the server would do with a predictor that cost nothing. ``--hello`` serves the bare
ASGI hello world instead, for the HTTP stack's own figures. The phases are timed with
``time.thread_time`` around wrapped functions, which adds about a microsecond per phase:
compare runs of this script with each other, not with ``families.py``'s figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
from _families import FAMILIES, body
from _wrk import Load, command, parse, write_script
from inprocess import DEFAULT_PROJECT, build_app, families_in

clock = time.thread_time
totals: dict[str, float] = {}


def _add(phase: str, seconds: float) -> None:
    totals[phase] = totals.get(phase, 0.0) + seconds


def timed_function(owner: Any, name: str, phase: str) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            _add(phase, clock() - started)

    setattr(owner, name, wrapper)


class Timed:
    """The app, with its whole call and its sends timed; counts requests."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return

        async def timed_send(message: dict[str, Any]) -> None:
            started = clock()
            await send(message)
            _add("sends", clock() - started)

        started = clock()
        await self.inner(scope, receive, timed_send)
        _add("app", clock() - started)
        self.requests += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="linear", choices=FAMILIES)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--fixed-scores", action="store_true")
    parser.add_argument("--hello", action="store_true")
    parser.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    args = parser.parse_args()

    import uvicorn

    import modelrail.serving.app as served_app
    from modelrail.scoring.predictor import ScoringModel
    from modelrail.serving.server import bind

    (family,) = families_in(args.project.resolve(), (args.family,))
    built = None
    if args.hello:
        from asgi_hello import app as inner
    else:
        built = build_app(args.project.resolve() / "project", [family])
        inner = built.app
        timed_function(served_app, "matrix_from_json", "parse")
        from modelrail.serving import answers

        timed_function(answers.Answering, "answer", "answer")
        if args.fixed_scores:
            served = inner.models.current[family.model_name]
            request = served_app.matrix_from_json(
                body(family), served.input_spec, served_app.Limits(), mlflow=False
            )
            fixed = served.scoring.score_input(request)
            ScoringModel.score_input = lambda self, data: fixed  # type: ignore[method-assign]
        else:
            timed_function(ScoringModel, "score_input", "score")
    app = Timed(inner)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    path = "/predict" if args.hello else f"/v1/models/{family.model_name}/predict"
    script = args.project.resolve() / "breakdown.lua"
    write_script(script, body(family))
    load = Load(args.connections, 1, args.seconds)
    found: dict[str, Any] = {}

    def drive() -> None:
        while not server.started:
            time.sleep(0.05)
        subprocess.run(
            command(script, port, path, Load(load.connections, 1, 2)),
            capture_output=True,
            check=True,
        )
        totals.clear()
        app.requests = 0
        done = subprocess.run(
            command(script, port, path, load), capture_output=True, text=True, check=True
        )
        found["result"] = parse(done.stdout, load)
        found["totals"], found["requests"] = dict(totals), app.requests
        server.should_exit = True

    threading.Thread(target=drive, daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if built is not None:
            built.close()
    result, phases, requests = found["result"], found["totals"], found["requests"]
    per = {k: v / requests * 1e6 for k, v in phases.items()}
    rest = per.get("app", 0.0) - sum(v for k, v in per.items() if k != "app")
    what = (
        "bare ASGI hello"
        if args.hello
        else f"{family.key}{' (fixed scores)' if args.fixed_scores else ''}"
    )
    print(
        f"{what}, {args.connections} conn: {result.rps:,.0f} req/s; event loop thread CPU per "
        "request (us): "
        + ", ".join(f"{k} {v:.1f}" for k, v in per.items())
        + (f", rest of the app {rest:.1f}" if not args.hello else "")
    )


if __name__ == "__main__":
    main()

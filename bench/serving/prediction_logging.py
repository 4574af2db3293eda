"""What logging every request costs a modelrail server (issue 19 item 2): the same model and
request, `modelrail serve` without logging and with `--log-predictions 1.0`, at 8 connections.

    .venv/bin/python bench/serving/prediction_logging.py [--rounds 10] [--seconds 6] [--quick]

(Named so, not logging.py: a script's folder comes first on sys.path, and a logging.py there
would stand in for the standard library's module.)

The model is the serving benchmark's (`StandardScaler` + `LogisticRegression` on the breast
cancer data, 30 numbers; `_envs.train`), registered in a fresh project where it lands in dev.
Both servers run at once, each alone in its process group, and are checked to answer what
scikit-learn predicts. Each round drives each with `wrk -t1 -c8` (1 s warm-up, then the
measured run), alternating which goes first, so drift on a shared machine hits both alike.
The logging server's /metrics must show every logged request written and none dropped, and
its log is read back at the end: a run that dropped records would flatter the figure.
Prints each round, the ratio of the two within each round (the headline is the median of
those: on a shared machine a round's pair sees the same background load, the medians of each
side need not) and the ratio of the medians; the target is a cost under 10% of throughput.
Results go to bench/.work/prediction-logging-results.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

from _envs import ROOT, clean_env, source_state, train
from _servers import HOST, Server, cpu_seconds, running, stop_all, stop_on_signals, warn_if_busy
from _wrk import Load, Result, drive, write_script

sys.path.insert(0, str(ROOT / "bench"))
from _common import command_line, load_average, machine, write_results

RESULTS = ROOT / "bench" / ".work" / "prediction-logging-results.json"
LOGS = ROOT / "bench" / ".work" / "prediction-logging-logs"
PREDICT = "/v1/models/bench-model/predict"
CONNECTIONS = 8
TARGET = 0.10  # at most this share of throughput lost to logging


def counter(port: int, name: str) -> float:
    """The sum of a counter's series in the server's /metrics."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.MULTILINE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=6, help="measured seconds per run")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s")
    args = parser.parse_args()
    rounds, seconds = (3, 3) if args.quick else (args.rounds, args.seconds)

    stop_on_signals()
    host = machine()
    warn_if_busy(host["load"])
    source = source_state()
    began = time.monotonic()
    LOGS.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[Result]] = {"off": [], "on": []}
    try:
        with tempfile.TemporaryDirectory(prefix="modelrail-logging-bench-") as tmp:
            work = Path(tmp)
            print("training the model and registering it in a fresh modelrail project ...")
            model = train(work)
            body = json.dumps({"inputs": [model.row]}).encode()
            script = work / "request.lua"
            write_script(script, body)
            project = work / "modelrail-project"
            logs = work / "prediction-log"
            serve = [str(ROOT / ".venv" / "bin" / "modelrail"), "serve", "--env", "dev"]
            serve += ["--port", "{port}"]
            off = Server("off", "modelrail serve", serve, PREDICT, body, clean_env(), project)
            on = Server(
                "on",
                "modelrail serve --log-predictions 1.0",
                [*serve, "--log-predictions", "1.0"],
                PREDICT,
                body,
                clean_env(MODELRAIL_MONITORING_ROOT=str(logs)),
                project,
            )
            with (
                running(off, LOGS, model.expected) as off_port,
                running(on, LOGS, model.expected) as on_port,
            ):
                ports = {"off": off_port, "on": on_port}
                for index in range(rounds):
                    order = ("off", "on") if index % 2 == 0 else ("on", "off")
                    for key in order:
                        port = ports[key]
                        load = Load(CONNECTIONS, 1, seconds)
                        result = drive(
                            script, port, PREDICT, load, 1, cpu=lambda p=port: cpu_seconds(p)
                        )
                        results[key].append(result)
                        cpu = result.cpu_us_per_request or 0.0
                        print(
                            f"  round {index + 1} {key:>3}: {result.rps:>9,.0f} req/s  "
                            f"p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  "
                            f"{cpu:.0f} us CPU/request  errors {result.errors}",
                            flush=True,
                        )
                time.sleep(12)  # past the log's 10 s roll: what was queued is written
                written = counter(on_port, "modelrail_prediction_log_written_total")
                dropped = counter(on_port, "modelrail_prediction_log_dropped_total")
            logged_rows = _logged_rows(logs)
    finally:
        stop_all()
    off_rps = statistics.median(r.rps for r in results["off"])
    on_rps = statistics.median(r.rps for r in results["on"])
    # Each round measures both servers back to back: their ratio within a round is what
    # logging costs at that moment, whatever else the machine was doing then.
    paired = [on.rps / off.rps for on, off in zip(results["on"], results["off"], strict=True)]
    cost = 1 - statistics.median(paired)
    cpu_off = statistics.median(r.cpu_us_per_request or 0.0 for r in results["off"])
    cpu_on = statistics.median(r.cpu_us_per_request or 0.0 for r in results["on"])
    answered = sum(r.requests for r in results["on"])
    verdict = "PASS" if cost < TARGET and dropped == 0 else "MISS"
    lines = [
        f"machine: {host['cpu']}, {host['cores']} cores, {host['ram']}, {host['os']}, "
        f"Python {host['python']}, load before {host['load']}, after {load_average()}",
        f"command: {command_line()}",
        f"source: {source}",
        f"{rounds} rounds of {seconds} s at {CONNECTIONS} connections (wrk -t1, 1 s warm-up)",
        f"without logging:           {off_rps:>9,.0f} req/s (median), "
        f"{cpu_off:.1f} us server CPU per request",
        f"--log-predictions 1.0:     {on_rps:>9,.0f} req/s (median), "
        f"{cpu_on:.1f} us server CPU per request",
        "ratio within each round: " + " ".join(f"{r:.3f}" for r in paired),
        f"logging costs {cost:.1%} of throughput (median of the rounds' ratios; ratio of the "
        f"medians {on_rps / off_rps:.3f}) (target < {TARGET:.0%}): {verdict}",
        f"logged: {written:,.0f} requests written, {dropped:,.0f} dropped; "
        f"{logged_rows:,} rows read back (measured runs answered {answered:,}, "
        "plus warm-ups and checks)",
    ]
    print("\n".join(lines))
    write_results(
        RESULTS,
        {
            "machine": host,
            "command": command_line(),
            "source": source,
            "rounds": rounds,
            "seconds": seconds,
            "connections": CONNECTIONS,
            "results": {k: [asdict(r) for r in v] for k, v in results.items()},
            "median_rps": {"off": off_rps, "on": on_rps},
            "median_cpu_us_per_request": {"off": cpu_off, "on": cpu_on},
            "ratios": paired,
            "cost": cost,
            "written": written,
            "dropped": dropped,
            "logged_rows": logged_rows,
            "verdict": verdict,
            "wall_seconds": round(time.monotonic() - began, 1),
        },
    )
    print(f"written to {RESULTS.relative_to(ROOT)}")


def _logged_rows(logs: Path) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from modelrail.monitoring.logfiles import read_predictions

    return int(read_predictions(logs, "bench-model").num_rows)


if __name__ == "__main__":
    main()

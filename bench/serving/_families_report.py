"""The family benchmark's table, ratios and verdicts against issue 16's targets:

- modelrail at least 0.5x the bare ASGI hello world at 1 and 8 connections (every family,
  the linear model included);
- at least 10x the plain FastAPI app calling the library, at 1 and 8 connections (the five
  families the issue lists; for the linear model the ratio is shown, not judged);
- p99 under 2 ms at 1 connection (every family);
- no errors.

The bare ASGI hello world is measured at the start and at the end of each concurrency's round;
the verdict divides by the faster of the two (the stricter ratio).
"""

from __future__ import annotations

from typing import Any

from _families import LABELS
from _report import header
from _wrk import Result

HELLO_SHARE = 0.5
LIBRARY_MULTIPLE = 10.0
P99_TARGET_MS = 2.0
NOT_JUDGED_AGAINST_LIBRARY = frozenset({"linear"})
Points = dict[tuple[str, str], list[Result]]
SERVERS = {
    "modelrail": "**modelrail serve**",
    "modelrail-base": "modelrail serve, baseline source",
    "fastapi-lib": "FastAPI + library",
}


def _at(points: Points, server: str, family: str, connections: int) -> list[Result]:
    return [r for r in points.get((server, family), []) if r.connections == connections]


def _one(points: Points, server: str, family: str, connections: int) -> Result | None:
    found = _at(points, server, family, connections)
    return found[0] if found else None


def _hello(points: Points, connections: int) -> Result | None:
    found = _at(points, "asgi-hello", "", connections)
    return max(found, key=lambda r: r.rps) if found else None


def verdicts(points: Points, families: tuple[str, ...]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    for family in families:
        for connections in (1, 8):
            ours = _one(points, "modelrail", family, connections)
            hello = _hello(points, connections)
            if ours is not None and hello is not None:
                ratio = ours.rps / hello.rps
                checks.append(
                    {
                        "family": family,
                        "check": f">= {HELLO_SHARE}x bare ASGI hello at {connections} conn",
                        "ratio": round(ratio, 3),
                        "pass": ratio >= HELLO_SHARE and ours.errors == 0,
                    }
                )
            library = _one(points, "fastapi-lib", family, connections)
            if ours is not None and library is not None:
                ratio = ours.rps / library.rps
                judged = family not in NOT_JUDGED_AGAINST_LIBRARY
                checks.append(
                    {
                        "family": family,
                        "check": f">= {LIBRARY_MULTIPLE:g}x FastAPI + library at {connections} "
                        "conn",
                        "ratio": round(ratio, 2),
                        "pass": (ratio >= LIBRARY_MULTIPLE) if judged else None,
                    }
                )
        one = _one(points, "modelrail", family, 1)
        if one is not None:
            checks.append(
                {
                    "family": family,
                    "check": f"p99 at 1 conn < {P99_TARGET_MS:g} ms",
                    "p99_ms": one.p99_ms,
                    "pass": one.p99_ms < P99_TARGET_MS,
                }
            )
    return checks


def _cpu(result: Result) -> str:
    value = result.cpu_us_per_request
    return "-" if value is None else f"{value:,.0f}"


def _row(label: str, r: Result, *ratios: str) -> str:
    return (
        f"| {label} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
        f"| {_cpu(r)} | {r.errors} | " + " | ".join(ratios) + " |"
    )


def table(points: Points, families: tuple[str, ...]) -> list[str]:
    lines = [
        "| server | conn | req/s | p50 ms | p99 ms | server CPU µs/req | errors "
        "| ÷ bare ASGI hello | modelrail ÷ this |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for connections in (1, 8):
        hello = _hello(points, connections)
        for index, r in enumerate(_at(points, "asgi-hello", "", connections)):
            when = "start" if index == 0 else "end"
            lines.append(_row(f"bare ASGI hello world ({when} of round)", r, "1.00", ""))
        fastapi_hello = _one(points, "fastapi-hello", "", connections)
        if fastapi_hello is not None and hello is not None:
            share = f"{fastapi_hello.rps / hello.rps:.2f}"
            lines.append(_row("FastAPI hello world", fastapi_hello, share, ""))
        for family in families:
            ours = _one(points, "modelrail", family, connections)
            for server, label in SERVERS.items():
                result = _one(points, server, family, connections)
                if result is None:
                    continue
                share = f"{result.rps / hello.rps:.2f}" if hello is not None else "-"
                multiple = ""
                if server != "modelrail" and ours is not None and result.rps > 0:
                    multiple = f"{ours.rps / result.rps:.2f}"
                lines.append(_row(f"{label}: {LABELS[family]}", result, share, multiple))
    return lines


def verdict_table(checks: list[dict[str, Any]], families: tuple[str, ...]) -> list[str]:
    columns = [
        f">= {HELLO_SHARE}x bare ASGI hello at 1 conn",
        f">= {HELLO_SHARE}x bare ASGI hello at 8 conn",
        f">= {LIBRARY_MULTIPLE:g}x FastAPI + library at 1 conn",
        f">= {LIBRARY_MULTIPLE:g}x FastAPI + library at 8 conn",
        f"p99 at 1 conn < {P99_TARGET_MS:g} ms",
    ]
    lines = ["| family | " + " | ".join(columns) + " |", "|---" + "|---" * len(columns) + "|"]
    for family in families:
        cells = []
        for column in columns:
            check = next(
                (c for c in checks if c["family"] == family and c["check"] == column), None
            )
            if check is None:
                cells.append("-")
                continue
            figure = f"{check['p99_ms']:.2f} ms" if "p99_ms" in check else f"{check['ratio']}x"
            state = {True: "PASS", False: "MISS", None: "not judged"}[check["pass"]]
            cells.append(f"{state} ({figure})")
        lines.append(f"| {LABELS[family]} | " + " | ".join(cells) + " |")
    return lines


def report(
    host: dict[str, str],
    command: str,
    source: str,
    points: Points,
    families: tuple[str, ...],
    checks: list[dict[str, Any]],
    leftover: list[int],
    notes: list[str],
) -> str:
    lines = [
        *header(host, command),
        f"Source: {source}",
        "",
        *table(points, families),
        "",
        *verdict_table(checks, families),
        "",
        "still listening afterwards: " + (str(leftover) if leftover else "nothing"),
        *(f"note: {note}" for note in notes),
    ]
    return "\n".join(lines)

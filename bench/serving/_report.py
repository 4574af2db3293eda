"""The serving benchmark's table, ratios and verdict against issue 4's target."""

from __future__ import annotations

from typing import Any

from _wrk import Result

P99_TARGET_MS = 2.0
CEILING = "hello"
OURS = "modelrail"


def _at(results: dict[str, list[Result]], key: str, connections: int) -> Result | None:
    return next((r for r in results.get(key, []) if r.connections == connections), None)


def target_verdict(results: dict[str, list[Result]]) -> dict[str, Any]:
    """modelrail at least as fast as the hello world at each concurrency; p99 < 2 ms at 1."""
    checks: list[dict[str, Any]] = []
    for ours in results.get(OURS, []):
        ceiling = _at(results, CEILING, ours.connections)
        if ceiling is None:
            continue
        checks.append(
            {
                "check": f"req/s at {ours.connections} conn >= hello world",
                "modelrail": ours.rps,
                "hello_world": ceiling.rps,
                "ratio": round(ours.rps / ceiling.rps, 3),
                "pass": ours.rps >= ceiling.rps,
            }
        )
    one = _at(results, OURS, 1)
    if one is not None:
        checks.append(
            {
                "check": f"p99 at 1 conn < {P99_TARGET_MS:g} ms",
                "modelrail": one.p99_ms,
                "pass": one.p99_ms < P99_TARGET_MS,
            }
        )
    clean = all(r.errors == 0 for r in results.get(OURS, []))
    checks.append({"check": "no errors from modelrail", "pass": clean})
    complete = one is not None and len(checks) == 5
    return {"checks": checks, "pass": complete and all(c["pass"] for c in checks)}


def _errors(result: Result) -> str:
    if result.errors == 0:
        return "0"
    parts = [f"{result.non_2xx} non-2xx"] if result.non_2xx else []
    if result.socket_errors:
        parts.append(f"socket: {result.socket_detail}")
    return "; ".join(parts)


def table(labels: dict[str, str], results: dict[str, list[Result]]) -> list[str]:
    lines = [
        "| server | connections | req/s | p50 ms | p99 ms | errors | modelrail ÷ this (req/s) |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for key, rows in results.items():
        for r in rows:
            ours = _at(results, OURS, r.connections)
            ratio = f"{ours.rps / r.rps:.2f}" if ours is not None and r.rps > 0 else "-"
            threads = f" (-t{r.threads})" if r.threads > 1 else ""
            lines.append(
                f"| {labels.get(key, key)} | {r.connections}{threads} | {r.rps:,.0f} "
                f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {_errors(r)} | {ratio} |"
            )
    return lines


def header(host: dict[str, str], command: str) -> list[str]:
    """The machine, its load average before and after the run, and the command."""
    return [
        "",
        f"Machine: {host['cpu']}, {host['cores']} cores, {host['ram']} RAM, "
        f"Python {host['python']}, {host['os']}",
        f"Load average (1, 5, 15 min): {host['load']} before, {host['load_after']} after",
        f"Command: {command}",
    ]


def report(
    host: dict[str, str],
    command: str,
    labels: dict[str, str],
    results: dict[str, list[Result]],
    problems: dict[str, str],
    verdict: dict[str, Any],
    leftover: list[int],
) -> str:
    lines = [
        *header(host, command),
        "",
        *table(labels, results),
        "",
    ]
    for check in verdict["checks"]:
        state = "PASS" if check["pass"] else "MISS"
        detail = ""
        if "hello_world" in check:
            detail = (
                f": {check['modelrail']:,.0f} vs {check['hello_world']:,.0f} "
                f"({check['ratio']:.2f}x)"
            )
        elif "modelrail" in check:
            detail = f": {check['modelrail']:.2f} ms"
        lines.append(f"- {state} {check['check']}{detail}")
    lines.append(f"Target (issue 4, item 6): {'PASS' if verdict['pass'] else 'MISS'}")
    for key, problem in problems.items():
        lines += ["", f"{labels.get(key, key)}: {problem}"]
    lines.append(
        f"still listening afterwards: {leftover}" if leftover else "nothing listening afterwards"
    )
    return "\n".join(lines)

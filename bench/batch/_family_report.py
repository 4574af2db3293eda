"""The by-family batch benchmark's report: versions, the JSON document, the printed text
(a markdown table) and the summary of a profiled job."""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import platform
import pstats
import sqlite3
import time
from pathlib import Path
from typing import Any

PACKAGES = (
    "modelrail",
    "pandas",
    "pyarrow",
    "numpy",
    "scikit-learn",
    ("xgboost", "xgboost-cpu"),
    "lightgbm",
    "onnxruntime",
    "skl2onnx",
    "onnxmltools",
    "treelite",
    "skops",
    "sqlalchemy",
    "psycopg",
)


def versions() -> str:
    """.venv's packages that either side may use (the driver runs with .venv's Python)."""
    found = []
    for entry in PACKAGES:
        for name in (entry,) if isinstance(entry, str) else entry:
            try:
                found.append(f"{name} {metadata.version(name)}")
                break
            except metadata.PackageNotFoundError:
                continue
        else:
            found.append(f"{entry if isinstance(entry, str) else entry[0]} missing")
    found.append(f"SQLite {sqlite3.sqlite_version}, Python {platform.python_version()}")
    return ", ".join(found)


def document(
    args: argparse.Namespace,
    info: dict[str, Any],
    models: dict[str, Any],
    inputs: dict[str, Any],
    rows: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick,
        "options": {k: v for k, v in vars(args).items() if k != "quick"},
        "machine": info,
        "versions": versions(),
        "models": models,
        "inputs": inputs,
        "rows": rows,
        "profiles": profiles,
    }


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _verdict(row: dict[str, Any]) -> str:
    outputs = row["checks"].get("outputs", {}).values()
    if not all(entry["ok"] for entry in outputs):
        return "**WRONG OUTPUT**"
    return {True: "PASS", False: "**MISS**", None: ""}[row["passed"]]


def table(
    doc: dict[str, Any],
    labels: dict[str, str],
    sink_names: dict[str, str],
    competitors: dict[str, str],
    ratio_target: float,
    memory_target: float,
) -> str:
    head = (
        "| family | scenario | modelrail rows/s | competitor | competitor rows/s "
        "| modelrail ÷ competitor | target | result | peak MB modelrail / competitor "
        "| modelrail's batch form |"
    )
    lines = [head, "|---|---|---:|---|---:|---:|---|---|---|---|"]
    for row in doc["rows"]:
        family, scenario = row["family"], row["scenario"]
        form = doc["models"].get(family, {}).get("forms", {}).get("batch", "?")
        if scenario.startswith("memory:"):
            sink = sink_names[scenario.split(":", 1)[1]]
            shown = f"memory: {row['rows']:,} rows into {sink}"
            competitor, target = "", f"peak < {memory_target:.0f} MB"
            peaks = _mb(row["modelrail_peak_mb"])
        else:
            shown = f"{sink_names[scenario]}, {row['rows']:,} rows"
            competitor, target = competitors[scenario], f">= {ratio_target:g}x pandas"
            peaks = f"{_mb(row['modelrail_peak_mb'])} / {_mb(row['pandas_peak_mb'])}"
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(
            f"| {labels[family]} | {shown} | {_rate(row['modelrail_rows_per_s'])} | {competitor} "
            f"| {_rate(row['pandas_rows_per_s']) if competitor else ''} | {ratio} | {target} "
            f"| {_verdict(row)} "
            f"| {peaks} | {form} |"
        )
    return "\n".join(lines)


def _samples(row: dict[str, Any]) -> str:
    parts = []
    for side in ("modelrail", "pandas"):
        samples = row[f"{side}_samples"]
        if samples:
            rates = ", ".join(f"{s['rows'] / s['seconds']:,.0f}" for s in samples)
            cpu = ", ".join(f"{s['cpu_seconds']:.2f}" for s in samples)
            parts.append(f"{side} {rates} (CPU s {cpu})")
    return "; ".join(parts)


def _check_lines(title: str, result: dict[str, Any]) -> list[str]:
    lines = []
    for label, entry in result["outputs"].items():
        lines.append(
            f"  {title} / {label}: rows {entry['rows']:,} "
            f"({'ok' if entry['rows_ok'] else 'WRONG'}), {result['sample']:,} ids: "
            f"{entry['prediction_mismatches']} class mismatches, "
            f"{entry['sample_missing']} missing, max |p - library| "
            f"{entry['max_probability_diff']:.1e} ({'ok' if entry['ok'] else 'FAILED'})"
        )
    return lines


def report(
    doc: dict[str, Any],
    labels: dict[str, str],
    sink_names: dict[str, str],
    competitors: dict[str, str],
    ratio_target: float,
    memory_target: float,
) -> str:
    info = doc["machine"]
    out = [
        "",
        f"machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}",
        f"load average {info['load']} before, {info['load_after']} after",
        f"command: {doc['command']}",
        f"source: {info['source']}",
        f"versions: {doc['versions']}; {info.get('postgres') or 'PostgreSQL not used'}",
        "",
        "models (modelrail's batch predictor, chosen at registration):",
    ]
    for family, model in doc["models"].items():
        forms = model["forms"]
        extra = (
            ", rows with a missing value: library" if "rows_with_missing_values" in forms else ""
        )
        out.append(
            f"  {labels[family]}: {model['model']}, train accuracy {model['train_accuracy']}, "
            f"{len(model['nullable_inputs'])} inputs may be missing; batch form "
            f"{forms['batch']}{extra}"
        )
        for kind, what in forms["tried"].items():
            out.append(f"      {kind}: {what}")
    out += ["", table(doc, labels, sink_names, competitors, ratio_target, memory_target), ""]
    out.append("samples (rows/s per job, CPU seconds of all threads):")
    for row in doc["rows"]:
        out.append(f"  {row['family']} {row['scenario']}: {_samples(row)}")
    out.append("\nchecks:")
    for family, model in doc["models"].items():
        for sink, result in model.get("prechecks", {}).items():
            out += _check_lines(f"{family} {sink} before timing", result)
    for row in doc["rows"]:
        if row["checks"]:
            where = row["scenario"].replace("memory:", "memory into ")
            title = where if where.startswith("memory") else f"{where} timed"
            out += _check_lines(f"{row['family']} {title}", row["checks"])
    for found in doc["profiles"]:
        out.append(
            f"\nprofile of modelrail's {found['family']} {found['scenario']} job "
            f"({found['seconds_under_profile']:.2f} s under cProfile, threads "
            f"{', '.join(found['threads'])}):"
        )
        for stage, seconds in found["stages"].items():
            out.append(f"  {seconds:7.3f} s  {stage}")
        out.append(f"  top 10 by own time ({found['lock_wait_seconds']} s of lock waits left out):")
        for entry in found["top_by_tottime"]:
            out.append(
                f"  {entry['tottime']:7.3f} s own {entry['cumtime']:7.3f} s cum "
                f"{entry['calls']:>9} calls  {entry['function']}"
            )
    out.append("\nnotes:")
    out += [f"  - {note}" for note in doc["notes"]]
    return "\n".join(out)


def profile_summary(folder: Path, stages: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The cumulative time of ``stages`` (name -> (file part, function)) and the top 10
    functions by own time (lock waits apart) over every thread's profile in ``folder``."""
    files = sorted(folder.glob("*.prof"))
    stats = pstats.Stats(str(files[0]))
    for path in files[1:]:
        stats.add(str(path))
    entries: list[dict[str, Any]] = []
    waits = 0.0
    found: dict[str, float] = {}
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        for stage, (where, function) in stages.items():
            if where in filename and name == function:
                found[stage] = round(found.get(stage, 0.0) + cumtime, 3)
        if "_thread.lock" in name and "acquire" in name:
            waits += tottime
            continue
        shown = filename.split("site-packages/")[-1].split("/src/")[-1].split("/lib/python3")[-1]
        entries.append(
            {
                "function": f"{shown}:{line}({name})",
                "calls": calls,
                "tottime": round(tottime, 3),
                "cumtime": round(cumtime, 3),
            }
        )
    entries.sort(key=lambda e: -e["tottime"])
    return {
        "threads": [p.stem.removeprefix("thread-") for p in files],
        "lock_wait_seconds": round(waits, 3),
        "stages": {stage: found[stage] for stage in stages if stage in found},
        "top_by_tottime": entries[:10],
    }

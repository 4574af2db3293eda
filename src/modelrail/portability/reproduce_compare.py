"""The recorded run against its rebuild, row by row: code, environment, each dataset and
the params by their component fingerprints, each metric within a tolerance, and the
predictions of both model versions on the test data."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelrail.entities import ComponentVersion, Run
from modelrail.portability.reproduce_env import package_differences

SAME, DIFFERS, SKIPPED = "same", "differs", "not compared"


@dataclass(frozen=True)
class ComparisonRow:
    component: str
    recorded: str
    rebuilt: str
    result: str  # SAME, DIFFERS or SKIPPED
    detail: str = ""


def compare_components(original: Run, rebuilt: Run) -> list[ComparisonRow]:
    rows = [_code_row(original, rebuilt), _environment_row(original, rebuilt)]
    for role, cv in original.components.items():
        if cv.kind == "data":
            rows.append(_data_row(role, cv, rebuilt.components.get(role)))
    if "params" in original.components:
        rows.append(_params_row(original, rebuilt))
    return rows


def compare_metrics(
    original: Run, rebuilt: Run, tolerance: float, ignored: Iterable[str]
) -> list[ComparisonRow]:
    skip = set(ignored)
    rows = []
    for key, before in sorted(original.metrics.items()):
        if key in skip:
            rows.append(ComparisonRow(f"metric {key}", _num(before), "-", SKIPPED, "ignored"))
            continue
        after = rebuilt.metrics.get(key)
        if after is None:
            rows.append(ComparisonRow(f"metric {key}", _num(before), "not logged", DIFFERS))
            continue
        same = abs(after - before) <= tolerance
        detail = "" if same else f"off by {after - before:+.3g} (tolerance {tolerance:g})"
        rows.append(
            ComparisonRow(
                f"metric {key}", _num(before), _num(after), SAME if same else DIFFERS, detail
            )
        )
    return rows


def compare_predictions(
    original: Any, rebuilt: Any, test_data: Path, label: str, tolerance: float
) -> ComparisonRow:
    """Both loaded versions score the test data; rows identical within ``tolerance`` count."""
    frame = read_table(test_data)
    before = np.asarray(original.predict(frame))
    after = np.asarray(rebuilt.predict(frame))
    rows = len(frame)
    if before.shape != after.shape:
        return ComparisonRow(
            "predictions",
            f"on {label}",
            f"shape {after.shape}",
            DIFFERS,
            f"recorded {before.shape}",
        )
    same = _equal_rows(before, after, tolerance)
    identical = int(same.sum())
    result = SAME if identical == rows else DIFFERS
    detail = "" if result == SAME else f"{rows - identical:,} of {rows:,} rows differ"
    return ComparisonRow(
        "predictions", f"on {label}", f"{identical:,} rows identical", result, detail
    )


def read_table(path: Path) -> Any:
    """A CSV or Parquet file (or folder of Parquet files) as a pandas DataFrame."""
    import pandas as pd
    import pyarrow.csv as pacsv

    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return pacsv.read_csv(path).to_pandas()
    return pd.read_parquet(path)


def _equal_rows(before: np.ndarray[Any, Any], after: np.ndarray[Any, Any], tolerance: float) -> Any:
    if before.dtype.kind in "fc" or after.dtype.kind in "fc":
        a, b = before.astype(float), after.astype(float)
        close = (np.abs(a - b) <= tolerance) | (np.isnan(a) & np.isnan(b))
    else:
        close = before == after
    return close.reshape(len(before), -1).all(axis=1) if close.ndim > 1 else close


def _code_row(original: Run, rebuilt: Run) -> ComparisonRow:
    before, after = original.components.get("code"), rebuilt.components.get("code")
    recorded, made = _code_text(original), _code_text(rebuilt)
    if before is None or after is None:
        return ComparisonRow("code", recorded, made, SKIPPED, "no code component")
    if before.fingerprint == after.fingerprint:
        return ComparisonRow("code", recorded, made, SAME)
    return ComparisonRow("code", recorded, made, DIFFERS, _code_changes(original, rebuilt))


def _code_changes(original: Run, rebuilt: Run) -> str:
    """Which part of the code differs: commit, uncommitted diff, untracked files, script."""
    git_a = original.provenance.get("git") or {}
    git_b = rebuilt.provenance.get("git") or {}
    changes = [
        what
        for what, key in (("commit", "commit"), ("uncommitted diff", "diff_sha256"))
        if git_a.get(key) != git_b.get(key)
    ]
    files_a, files_b = _untracked(original), _untracked(rebuilt)
    changed = sorted(
        path for path in set(files_a) | set(files_b) if files_a.get(path) != files_b.get(path)
    )
    if changed:
        changes.append("untracked files " + ", ".join(changed[:5]))
    entry_a = original.provenance.get("entry_point") or {}
    entry_b = rebuilt.provenance.get("entry_point") or {}
    if entry_a.get("script_sha256") != entry_b.get("script_sha256"):
        changes.append("script")
    if original.architecture != rebuilt.architecture:
        changes.append(f"architecture {original.architecture} -> {rebuilt.architecture}")
    return "differs in: " + ", ".join(changes) if changes else ""


def _untracked(run: Run) -> dict[str, str]:
    snapshot = run.provenance.get("code_snapshot") or {}
    return {str(f.get("path")): str(f.get("sha256")) for f in snapshot.get("untracked") or ()}


def _code_text(run: Run) -> str:
    git = run.provenance.get("git") or {}
    commit = str(git.get("commit") or "no commit")[:7]
    snapshot = run.provenance.get("code_snapshot") or {}
    extra = " (+ diff)" if git.get("dirty") else ""
    untracked = len(snapshot.get("untracked") or ())
    if untracked:
        extra += f" (+ {untracked} untracked)"
    return commit + extra


def _environment_row(original: Run, rebuilt: Run) -> ComparisonRow:
    before, after = original.components.get("environment"), rebuilt.components.get("environment")
    if before is None or after is None:
        return ComparisonRow("environment", "-", "-", SKIPPED, "no environment component")
    if before.fingerprint == after.fingerprint:
        return ComparisonRow("environment", _env_text(before), _env_text(after), SAME)
    changes = package_differences(
        str(before.details.get("python")),
        _packages(before),
        str(after.details.get("python")),
        _packages(after),
    )
    for key in ("os", "machine", "implementation"):
        if before.details.get(key) != after.details.get(key):
            changes.append(f"{key} {before.details.get(key)} -> {after.details.get(key)}")
    return ComparisonRow(
        "environment", _env_text(before), _env_text(after), DIFFERS, "; ".join(changes[:8])
    )


def _packages(cv: ComponentVersion) -> dict[str, str]:
    found = cv.details.get("packages")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, Mapping) else {}


def _env_text(cv: ComponentVersion) -> str:
    return f"{cv.details.get('python')}, {len(_packages(cv))} packages"


def _data_row(role: str, before: ComponentVersion, after: ComponentVersion | None) -> ComparisonRow:
    recorded = f"{before.lineage.removeprefix('data:')} {before.label}"
    if after is None:
        return ComparisonRow(role, recorded, "not logged", DIFFERS, "the rerun logged no such data")
    if after.fingerprint == before.fingerprint:
        return ComparisonRow(role, recorded, "fingerprint matches", SAME)
    rows = f"{after.details.get('rows')} rows"
    return ComparisonRow(
        role,
        recorded,
        f"{after.lineage.removeprefix('data:')} {after.label}",
        DIFFERS,
        f"fingerprint {after.fingerprint[:12]}, recorded {before.fingerprint[:12]} ({rows})",
    )


def _params_row(original: Run, rebuilt: Run) -> ComparisonRow:
    before, after = original.components["params"], rebuilt.components.get("params")
    recorded = f"{len(original.params)} params"
    if after is not None and after.fingerprint == before.fingerprint:
        return ComparisonRow("params", recorded, f"{len(rebuilt.params)} params", SAME)
    changed = sorted(
        key
        for key in set(original.params) | set(rebuilt.params)
        if original.params.get(key) != rebuilt.params.get(key)
    )
    return ComparisonRow(
        "params",
        recorded,
        f"{len(rebuilt.params)} params",
        DIFFERS,
        "changed: " + ", ".join(changed),
    )


def _num(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"

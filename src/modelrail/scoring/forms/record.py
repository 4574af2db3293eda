"""What was tried to make a version fast, and which form won each workload.

The record is plain JSON stored with the version (``ModelVersion.forms``): every candidate
form, verified or skipped with its reason, its timings, the content address of its bytes,
and the winner for one row and for a large batch. Nothing in it is trusted on its own: a
form's bytes are sha256-checked when they are read, like the model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ONE_ROW = "one_row"
BATCH = "batch"
WORKLOADS = (ONE_ROW, BATCH)

# The stated tolerance of a verified form against the model itself: identical labels,
# probabilities within PROBABILITY_ATOL, regression values within VALUE_RTOL of each value
# plus VALUE_RTOL of the largest value of the sample (float32 runtimes sum in float32, as
# XGBoost itself does).
PROBABILITY_ATOL = 1e-6
VALUE_RTOL = 1e-6

LIBRARY = "library"  # the kind of the model's own predict
COMPILED_LINEAR = "compiled-linear"
ONNXRUNTIME = "onnxruntime"
TREELITE = "treelite"

# How a flavor's library is named to people.
_LIBRARY_NAMES = {"sklearn": "scikit-learn", "joblib": "pickle", "python": "custom Python"}


def library_name(flavor: str) -> str:
    return _LIBRARY_NAMES.get(flavor, flavor)


@dataclass(frozen=True)
class Tried:
    """One candidate: verified (then timed, and stored unless it is the library itself) or
    skipped with the reason."""

    kind: str
    verified: bool
    reason: str = ""
    one_row_us: float | None = None
    batch_rows_per_s: float | None = None
    sha256: str | None = None
    size: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "verified": self.verified}
        if self.reason:
            data["reason"] = self.reason
        for key in ("one_row_us", "batch_rows_per_s", "sha256", "size"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.details:
            data["details"] = dict(self.details)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tried:
        return cls(
            kind=str(data["kind"]),
            verified=bool(data.get("verified")),
            reason=str(data.get("reason", "")),
            one_row_us=_float(data.get("one_row_us")),
            batch_rows_per_s=_float(data.get("batch_rows_per_s")),
            sha256=None if data.get("sha256") is None else str(data["sha256"]),
            size=None if data.get("size") is None else int(data["size"]),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class FormsRecord:
    """Every candidate tried for a version and the chosen one per workload."""

    tried: tuple[Tried, ...]
    chosen: Mapping[str, str]  # workload -> kind
    verified_rows: int
    library: str  # the flavor, e.g. "sklearn"
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "tried": [t.to_json() for t in self.tried],
            "chosen": dict(self.chosen),
            "verified_rows": self.verified_rows,
            "library": self.library,
            "tolerance": {"probabilities_atol": PROBABILITY_ATOL, "values_rtol": VALUE_RTOL},
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FormsRecord:
        return cls(
            tried=tuple(Tried.from_json(t) for t in data.get("tried", [])),
            chosen={str(k): str(v) for k, v in dict(data.get("chosen", {})).items()},
            verified_rows=int(data.get("verified_rows", 0)),
            library=str(data.get("library", "")),
            created_at=float(data.get("created_at", 0.0)),
        )

    def form(self, kind: str) -> Tried | None:
        return next((t for t in self.tried if t.kind == kind), None)

    def chosen_for(self, workload: str) -> Tried | None:
        """The verified form chosen for ``workload``; None means the library itself."""
        kind = self.chosen.get(workload, LIBRARY)
        if kind == LIBRARY:
            return None
        found = self.form(kind)
        return found if found is not None and found.verified and found.sha256 else None

    def stored(self) -> list[tuple[str, int]]:
        """(sha256, size) of every form whose bytes are stored."""
        return [(t.sha256, t.size or 0) for t in self.tried if t.verified and t.sha256]

    def label(self, kind: str) -> str:
        return library_name(self.library) if kind == LIBRARY else kind


def forms_record(version: Any) -> FormsRecord | None:
    """The forms record of a ``ModelVersion``, or None for a version without one."""
    data = getattr(version, "forms", None)
    if not isinstance(data, Mapping) or not data.get("tried"):
        return None
    return FormsRecord.from_json(data)


def stored_blobs(version: Any) -> list[tuple[str, int, str]]:
    """(sha256, size, what) of every form stored for a ``ModelVersion``: its forms record's,
    or the compiled form of a version registered before forms."""
    record = forms_record(version)
    if record is not None:
        return [(t.sha256, t.size or 0, f"{t.kind} form") for t in record.tried if t.sha256]
    compiled = version.flavor_details.get("compiled")
    if isinstance(compiled, Mapping):
        return [(str(compiled["sha256"]), int(compiled["size"]), "compiled form")]
    return []


def describe(record: FormsRecord | None, flavor: str) -> dict[str, Any]:
    """The predictors of a version as data (``models show --json``, ``GET /v1/models``)."""
    if record is None:
        return {
            ONE_ROW: {"form": library_name(flavor), "why": "no fast forms were built"},
            BATCH: {"form": library_name(flavor), "why": "no fast forms were built"},
            "tried": [],
        }
    found: dict[str, Any] = {}
    for workload in WORKLOADS:
        kind = record.chosen.get(workload, LIBRARY)
        tried = record.form(kind)
        entry: dict[str, Any] = {"form": record.label(kind)}
        if tried is not None:
            entry.update(_timings(tried))
        entry["why"] = _why(record, workload, kind)
        if tried is not None and tried.details.get("missing") == "library":
            entry["rows_with_missing_values"] = library_name(record.library)
        found[workload] = entry
    found["tried"] = [
        {"form": record.label(t.kind), "verified": t.verified, **_timings(t)}
        | ({"reason": t.reason} if t.reason else {})
        for t in record.tried
    ]
    found["verified_rows"] = record.verified_rows
    found["tolerance"] = {"probabilities_atol": PROBABILITY_ATOL, "values_rtol": VALUE_RTOL}
    return found


def _timings(tried: Tried) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tried.one_row_us is not None:
        out["one_row_us"] = round(tried.one_row_us, 2)
    if tried.batch_rows_per_s is not None:
        out["batch_rows_per_s"] = round(tried.batch_rows_per_s)
    return out


def _why(record: FormsRecord, workload: str, kind: str) -> str:
    verified = [t for t in record.tried if t.verified]
    if len(verified) <= 1:
        return "the only verified form"
    what = "fastest for one row" if workload == ONE_ROW else "most rows per second"
    chosen = record.form(kind)
    key = "one_row_us" if workload == ONE_ROW else "batch_rows_per_s"
    values = [getattr(t, key) for t in verified if getattr(t, key) is not None]
    mine = None if chosen is None else getattr(chosen, key)
    best = (min if workload == ONE_ROW else max)(values) if values else None
    if mine is not None and best is not None and mine != best:
        return "computes in float64 as the model does, within 25% of the fastest form"
    return f"{what} of {len(verified)} verified forms"


def summary_lines(record: FormsRecord | None, flavor: str) -> list[str]:
    """Two lines for people: the chosen forms, then what else was tried.

    ``one row: onnxruntime (7.9 µs, verified on 1,029 rows)   batch: onnxruntime (1.4 M rows/s)``
    ``tried: compiled-linear (not linear), treelite (41 µs), scikit-learn (4.7 ms)``"""
    if record is None:
        name = library_name(flavor)
        return [
            f"one row: {name}   batch: {name}   (no fast forms built: modelrail models compile)"
        ]
    one = record.chosen.get(ONE_ROW, LIBRARY)
    batch = record.chosen.get(BATCH, LIBRARY)
    one_tried, batch_tried = record.form(one), record.form(batch)
    library = library_name(record.library)
    one_notes = [
        *([_us(one_tried.one_row_us)] if one_tried and one_tried.one_row_us else []),
        f"verified on {record.verified_rows:,} rows",
        *([f"missing values: {library}"] if _gaps_to_library(one_tried) else []),
    ]
    batch_notes = [
        *([_rate(batch_tried.batch_rows_per_s)] if batch_tried else []),
        *([f"missing values: {library}"] if _gaps_to_library(batch_tried) else []),
    ]
    first = f"one row: {record.label(one)} ({', '.join(one_notes)})   batch: {record.label(batch)}"
    batch_notes = [note for note in batch_notes if note]
    if batch_notes:
        first += f" ({', '.join(batch_notes)})"
    others = [t for t in record.tried if t.kind not in (one, batch)]
    if not others:
        return [first]
    shown = ", ".join(
        f"{record.label(t.kind)} ({_us(t.one_row_us) if t.verified else t.reason})" for t in others
    )
    return [first, f"tried: {shown}"]


def _gaps_to_library(tried: Tried | None) -> bool:
    return tried is not None and tried.kind != LIBRARY and tried.details.get("missing") == "library"


def _us(value: float | None) -> str:
    if value is None:
        return "not timed"
    if value >= 1000:
        return f"{value / 1000:.1f} ms"
    return f"{value:.1f} µs" if value < 100 else f"{value:.0f} µs"


def _rate(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 1e6:
        return f"{value / 1e6:.1f} M rows/s"
    if value >= 1e3:
        return f"{value / 1e3:.0f} k rows/s"
    return f"{value:.0f} rows/s"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

"""A ``ModelCard`` as Markdown: the one generator behind ``modelrail card`` and the dashboard.

Everything taken from the records (names, columns, descriptions, reasons, gate details) is
escaped, so a column called ``<script>`` or a reason holding ``|`` stays text and cannot
break a table. The owner's sections are Markdown by design and are included as written,
under an escaped title; the dashboard renders them with raw HTML turned off.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelrail.entities import CardSection, GateResult
from modelrail.errors import InvalidInputError
from modelrail.portability.card import Decision, ModelCard
from modelrail.scoring.forms.record import BATCH, ONE_ROW, library_name

# Sections every card asks its owner for, shown as "not written yet" until they are.
SUGGESTED_SECTIONS = ("Intended use", "Limitations", "Ethical considerations")

# ASCII punctuation that means something inline in Markdown (or in a table cell).
_INLINE = re.compile(r"([\\`*_\[\]<>|~&!{}])")
# What starts a block when it begins a line: a heading, quote, list, rule, table or fence.
_LINE_START = re.compile(r"^(\s*\d*)([#>+=.)-])(?=\s|$)")
_CHECK = {True: "passed", False: "FAILED"}
_WORKLOADS = ((ONE_ROW, "one row"), (BATCH, "batch"))


def escape(value: object) -> str:
    """``value`` as Markdown text that renders as itself, on one line."""
    text = " ".join(str(value).split())
    return _LINE_START.sub(r"\1\\\2", _INLINE.sub(r"\\\1", text))


def card_markdown(card: ModelCard) -> str:
    """The whole card, ending with one newline."""
    parts = [
        _summary(card),
        _sections(card),
        _signature(card),
        _data(card),
        _params(card),
        _metrics(card),
        _gates(card),
        _environments(card),
        _predictor(card),
        _packages(card),
        _code(card),
    ]
    return "\n\n".join(part.strip("\n") for part in parts) + "\n"


def write_card(path: Path, markdown: str) -> None:
    """Write ``markdown`` to ``path`` whole or not at all (a temporary file beside it,
    renamed over it): a reader never sees half a card, an existing card stays until then."""
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(
            f"{{output}} {path}: the folder {folder} does not exist", params=("output",)
        )
    if path.is_dir():
        raise InvalidInputError(f"{{output}} {path} is a folder", params=("output",))
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise InvalidInputError(
            f"{{output}} {path}: cannot write in {folder}: {exc.strerror}", params=("output",)
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(markdown)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp's file is private; a card is as readable as the file it replaces.
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(headings: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, _Raw):
        return value.text
    return escape(value)


class _Raw:
    """Markdown made here from escaped parts, put in a cell as it is."""

    def __init__(self, text: str) -> None:
        self.text = text


def _code_span(text: str) -> _Raw:
    """For hashes and labels this module makes: never holds a backtick."""
    return _Raw(f"`{text}`")


def _summary(card: ModelCard) -> str:
    v, run = card.version, card.run
    lines = [f"# Model card: {escape(v.model)} version {v.version}"]
    if v.description.strip():
        lines += ["", *(escape(line) for line in v.description.strip().splitlines() if line)]
    risk = {
        None: "runs no code besides its library",
        "pickle": "pickle: loading it can run any code (saved with allow_pickle)",
        "shipped code": "runs the source files shipped with it (sha256-checked)",
    }.get(card.load_risk, card.load_risk)
    fmt = v.flavor_details.get("format")
    library = library_name(v.flavor) + (f" ({fmt})" if fmt and fmt != v.flavor else "")
    rows: list[tuple[str, object]] = [
        ("Model", v.model),
        ("Version", v.version),
        ("Reference", _code_span(v.reference)),
        ("Library", library),
        ("Estimator", card.estimator),
        ("Architecture", run.architecture if run else None),
        ("Registered", f"by {v.created_by} on {when(v.created_at)}"),
        ("Artifact", _Raw(f"sha256 `{v.artifact_sha256}` ({v.artifact_size:,} bytes)")),
        ("Loading", risk),
        ("Held now by", ", ".join(card.held_now) or "no environment"),
    ]
    if run is not None:
        started = f"experiment {run.experiment}, by {run.user} on {when(run.started_at)}"
        cell = _Raw(f"`{run.short_id}` {escape(run.name)} ({escape(started)}, {run.status})")
        rows.insert(6, ("Run", cell))
    else:
        rows.insert(6, ("Run", "none: registered without a run"))
    return "\n".join(lines) + "\n\n" + _table(("", ""), rows)


def _sections(card: ModelCard) -> str:
    written = {" ".join(s.title.split()).casefold() for s in card.sections}
    lines: list[str] = []
    for section in card.sections:
        lines += [f"## {escape(section.title)}", "", section.text.strip(), "", _byline(section)]
        lines.append("")
    missing = [s for s in SUGGESTED_SECTIONS if s.casefold() not in written]
    for title in missing:
        lines += [
            f"## {title}",
            "",
            f"*Not written yet: `modelrail card edit {card.version.model} "
            f'--section "{title}" --text ...`*',
            "",
        ]
    return "\n".join(lines)


def _byline(section: CardSection) -> str:
    scope = "every version" if section.version is None else f"version {section.version} only"
    return f"*Written by {escape(section.author)} on {when(section.created_at)}; for {scope}.*"


def _signature(card: ModelCard) -> str:
    sig = card.version.signature
    inputs = [(c.name, c.dtype, "allowed" if c.nullable else "refused") for c in sig.inputs]
    outputs = [(c.name, c.dtype) for c in sig.outputs]
    lines = [
        "## Signature",
        "",
        "Inputs:",
        "",
        _table(("column", "type", "missing values"), inputs),
    ]
    lines += ["", "Outputs:", "", _table(("column", "type"), outputs)]
    if sig.classes:
        shown = ", ".join(escape(_plain(c)) for c in sig.classes)
        probabilities = " (with class probabilities)" if sig.has_probabilities else ""
        lines += ["", f"Classes{probabilities}: {shown}"]
    return "\n".join(lines)


def _data(card: ModelCard) -> str:
    if card.run is None:
        return "## Data\n\nNo run is recorded for this version, so no data versions are known."
    if not card.data:
        return "## Data\n\nThe run recorded no datasets."
    rows = [
        (
            d.role,
            d.dataset,
            _code_span(d.label),
            f"{d.rows:,}" if d.rows is not None else None,
            d.source,
            _code_span(d.fingerprint[:12]),
        )
        for d in card.data
    ]
    lines = [
        "## Data",
        "",
        _table(("role", "dataset", "version", "rows", "read from", "sha256"), rows),
    ]
    for d in card.data:
        columns = ", ".join(f"{escape(name)} ({escape(kind)})" for name, kind in d.columns)
        lines += ["", f"Columns of {escape(d.role)} ({len(d.columns)}): {columns or '-'}"]
    return "\n".join(lines)


def _params(card: ModelCard) -> str:
    if not card.params:
        return "## Parameters\n\nNone recorded."
    rows = [(k, _plain(v)) for k, v in sorted(card.params.items())]
    return "## Parameters\n\n" + _table(("parameter", "value"), rows)


def _metrics(card: ModelCard) -> str:
    if not card.metrics and not card.test_metrics:
        return "## Metrics\n\nNone recorded."
    lines = ["## Metrics"]
    if card.test_metrics:
        on = f" ({escape(card.test_data)})" if card.test_data else ""
        lines += ["", f"On the test data{on}:", "", _metric_table(card.test_metrics)]
    if card.metrics:
        title = "Other metrics (final values)" if card.test_metrics else "Final values"
        lines += ["", f"{title}:", "", _metric_table(card.metrics)]
    return "\n".join(lines)


def _metric_table(metrics: Mapping[str, float]) -> str:
    return _table(("metric", "value"), ((k, f"{v:.6g}") for k, v in sorted(metrics.items())))


def _gates(card: ModelCard) -> str:
    if not card.decisions:
        return (
            "## Promotions and gates\n\nNever promoted: no environment has been asked to hold it."
        )
    version = card.version.version
    rows = [_decision_row(d, version) for d in card.decisions]
    lines = [
        "## Promotions and gates",
        "",
        _table(("when", "environment", "what", "by", "gates", "reason"), rows),
    ]
    for d in card.decisions:
        if d.gates:
            what = escape(_action(d, version))
            lines += ["", f"Gates when {what} in {escape(d.environment)}:", ""]
            lines += [f"- {_CHECK[g.passed]} {escape(g.gate)}: {escape(g.detail)}" for g in d.gates]
    return "\n".join(lines)


def _decision_row(d: Decision, version: int) -> tuple[object, ...]:
    what = _action(d, version)
    return (when(d.created_at), d.environment, what, d.actor, _gate_summary(d.gates), d.reason)


def _action(d: Decision, version: int) -> str:
    if d.to_version != version:  # a change that put another version in its place
        return f"replaced by version {d.to_version}"
    moved = {
        "auto": "entered",
        "promote": "promoted",
        "approve": f"approved (request {d.request_id})",
        "request": f"requested approval (request {d.request_id})",
        "reject": f"rejected (request {d.request_id})",
        "rollback": f"rolled back from {d.from_version} to it",
    }.get(d.action, d.action)
    if d.forced:
        moved += ", forced past failed gates"
    return moved


def _gate_summary(gates: tuple[GateResult, ...]) -> str:
    if not gates:
        return "-"
    failed = [g.gate for g in gates if not g.passed]
    return f"{len(gates) - len(failed)}/{len(gates)} passed" + (
        f" (failed: {', '.join(failed)})" if failed else ""
    )


def _environments(card: ModelCard) -> str:
    now = ", ".join(escape(e) for e in card.held_now) or "none"
    if not card.tenures:
        return f"## Environments\n\nHeld now by: {now}. No environment has held it."
    rows = [
        (t.environment, when(t.since), when(t.until) if t.until else "now") for t in card.tenures
    ]
    return f"## Environments\n\nHeld now by: {now}.\n\n" + _table(
        ("environment", "from", "until"), rows
    )


def _predictor(card: ModelCard) -> str:
    found = card.predictor
    rows = []
    for key, label in _WORKLOADS:
        entry = found.get(key) or {}
        timing = []
        if entry.get("one_row_us") is not None:
            timing.append(f"{entry['one_row_us']} µs per row")
        if entry.get("batch_rows_per_s") is not None:
            timing.append(f"{entry['batch_rows_per_s']:,} rows/s")
        rows.append((label, entry.get("form"), ", ".join(timing), entry.get("why")))
    lines = ["## Predictor", "", _table(("workload", "form", "timing", "why"), rows)]
    tried = found.get("tried") or []
    if tried:
        shown = ", ".join(
            escape(
                t["form"]
                + (" (verified)" if t.get("verified") else f" ({t.get('reason', 'not verified')})")
            )
            for t in tried
        )
        verified = found.get("verified_rows")
        lines += ["", f"Tried: {shown}." + (f" Verified on {verified:,} rows." if verified else "")]
    return "\n".join(lines)


def _packages(card: ModelCard) -> str:
    rows: list[tuple[str, object]] = [("Python", card.python)]
    rows += sorted(card.packages.items())
    lines = ["## Packages", "", _table(("package", "version"), rows)]
    if card.environment_packages:
        lines += ["", f"The run's environment recorded {card.environment_packages:,} packages."]
    return "\n".join(lines)


def _code(card: ModelCard) -> str:
    code = card.code
    if code is None:
        return "## Code\n\nNo run is recorded for this version, so its code is not known."
    dirty = {None: None, True: "yes: uncommitted changes", False: "no"}[code.dirty]
    rows: list[tuple[str, object]] = [
        ("Commit", _code_span(code.commit) if code.commit else "not in a git repository"),
        ("Branch", code.branch),
        ("Uncommitted changes", dirty),
        ("Remote", code.remote),
        ("Entry point", code.script),
        ("Code version", _code_span(code.label) if code.label else None),
    ]
    return "## Code\n\n" + _table(("", ""), rows)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

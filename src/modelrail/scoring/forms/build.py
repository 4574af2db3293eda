"""Building, verifying, timing and choosing a version's predictor forms.

Each candidate (``converters.py``) is built, loaded back from its bytes exactly as serving
and batch will load it, and run on the verification sample (``sample.py``): as one batch,
and row by row as a server calls it. A form that fails or disagrees with the model is
recorded with the reason and skipped. The verified ones, and the model's own predict, are
timed for one row and for a large batch; the fastest for each workload is chosen, and its
bytes stored content-addressed. Nothing here raises for a form: the worst outcome is that
the library itself serves, as it always did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelrail.artifacts import ArtifactStore
from modelrail.scoring.evaluation import ModelCall, Scored
from modelrail.scoring.forms.converters import Builder, Built, Skip, Subject, builders
from modelrail.scoring.forms.record import (
    BATCH,
    COMPILED_LINEAR,
    LIBRARY,
    ONE_ROW,
    FormsRecord,
    Tried,
)
from modelrail.scoring.forms.runtimes import FormRunner, load_form
from modelrail.scoring.forms.sample import Sample, verification_sample
from modelrail.scoring.forms.timing import batch_rows_per_s, one_row_us
from modelrail.scoring.forms.verification import disagreement

log = logging.getLogger("modelrail.forms")

BATCH_ROWS = 10_000
_ROW_BY_ROW = 16  # sample rows also scored one at a time, as a server scores them


@dataclass(frozen=True)
class _Measured:
    tried: Tried
    built: Built | None = None


def build_forms(
    artifacts: ArtifactStore,
    subject: Subject,
    *,
    candidates: Mapping[str, Builder] | None = None,
    clock: Callable[[], float] = time.time,
) -> FormsRecord:
    """Every candidate form of ``subject`` tried; the chosen ones stored in ``artifacts``."""
    library = _library_call(subject)
    found = _sample_and_answers(subject, library)
    if isinstance(found, str):
        tried = [Tried(kind, False, found) for kind in (candidates or builders())]
        library_tried = Tried(LIBRARY, True, "", *_library_timings(subject, library, None))
        return FormsRecord(
            (*tried, library_tried), {ONE_ROW: LIBRARY, BATCH: LIBRARY}, 0, subject.flavor, clock()
        )
    sample, expected = found
    measured = [
        _candidate(kind, build, subject, sample, expected)
        for kind, build in (candidates or builders()).items()
    ]
    # Timed only when there is a choice to make (a model no converter takes is not).
    contest = any(m.tried.verified for m in measured)
    one, rate = _library_timings(subject, library, sample if contest else None)
    measured.append(_Measured(Tried(LIBRARY, True, "", one, rate)))
    chosen = _choose([m.tried for m in measured])
    final = [_stored(artifacts, m, chosen) for m in measured]
    return FormsRecord(tuple(final), chosen, sample.rows, subject.flavor, clock())


def _library_call(subject: Subject) -> ModelCall:
    columns = tuple(c.name for c in subject.signature.inputs)
    wants_frame = hasattr(subject.predictor, "feature_names_in_")
    has_probabilities = subject.signature.has_probabilities and callable(
        getattr(subject.predictor, "predict_proba", None)
    )
    call = ModelCall(subject.predictor, columns, wants_frame, has_probabilities)
    example = subject.example
    if subject.numeric and not wants_frame:
        example = example.to_numpy(dtype="float64")
    return call.verified_single_pass(example)


def _sample_and_answers(subject: Subject, library: ModelCall) -> tuple[Sample, Scored] | str:
    """The verification sample and the model's answers on it; a sample the model cannot
    score is made again without unseen text, then without missing values. A reason when
    no sample works."""
    if not subject.signature.inputs or subject.example is None or len(subject.example) == 0:
        return "no input example to verify on"
    last = ""
    for unseen, missing in ((True, True), (False, True), (False, False)):
        try:
            sample = verification_sample(
                subject.signature,
                {"columns": list(subject.example.columns), "data": _rows(subject.example)},
                subject.predictor,
                unseen=unseen,
                missing=missing,
            )
            return sample, library.scores(sample.model_input())
        except Exception as exc:  # the user's model may raise anything on generated rows
            last = f"{type(exc).__name__}: {exc}"
    return f"the model cannot score rows around its input example ({last[:120]})"


def _rows(frame: Any) -> list[list[Any]]:
    plain = frame.astype(object).where(frame.notna(), None)
    return [list(row) for row in plain.itertuples(index=False, name=None)]


def _candidate(
    kind: str, build: Builder, subject: Subject, sample: Sample, expected: Scored
) -> _Measured:
    try:
        built = build(subject)
        one_row = load_form(built.kind, built.data, built.details, subject.signature, ONE_ROW)
        batch = load_form(built.kind, built.data, built.details, subject.signature, BATCH)
        reason, gaps_to_library = _verify(batch, one_row, sample, expected)
        if reason is not None:
            return _Measured(Tried(kind, False, f"disagrees: {reason}"))
        details = {**built.details, **({"missing": "library"} if gaps_to_library else {})}
        ties = expected.near_ties(_f32(batch))
        if ties is not None:  # the model scores ties here: production will need it for them
            details["near_ties"] = int(ties.sum())
        timed = sample.without(sample.missing()) if gaps_to_library else sample
        big = timed.repeated(BATCH_ROWS)
        tried = Tried(
            kind,
            True,
            one_row_us=one_row_us(one_row.scores, timed.one_rows(64)),
            batch_rows_per_s=batch_rows_per_s(batch.scores, big.model_input(), big.rows),
            details=details,
        )
        built = Built(built.kind, built.data, details)
        return _Measured(tried, built)
    except Skip as exc:
        return _Measured(Tried(kind, False, str(exc)))
    except Exception as exc:  # a converter or runtime failing is a reason, never an error
        log.debug("predictor form %s failed", kind, exc_info=True)
        message = " ".join(str(exc).split())[:160]
        return _Measured(Tried(kind, False, f"failed: {type(exc).__name__}: {message}"))


def _verify(
    batch: FormRunner, one_row: FormRunner, sample: Sample, expected: Scored
) -> tuple[str | None, bool]:
    """Why the form is refused (or None), and whether rows with a missing value must go
    to the library instead: a form that agrees with the model on complete rows only (ONNX
    trees send NaN elsewhere than scikit-learn does) serves those, and the library the rest."""
    reason = _disagrees(batch, one_row, sample, expected)
    gaps = sample.missing()
    if reason is None or not gaps.any() or gaps.all():
        return reason, False
    complete = _disagrees(batch, one_row, sample.without(gaps), expected.without(gaps))
    return (reason, False) if complete is not None else (None, True)


def _disagrees(
    batch: FormRunner, one_row: FormRunner, sample: Sample, expected: Scored
) -> str | None:
    try:
        reason = disagreement(expected, batch.scores(sample.model_input()), float32=_f32(batch))
    except Exception as exc:  # e.g. a runtime refusing a missing value
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
    if reason is not None:
        return reason
    for index, row in enumerate(sample.one_rows(_ROW_BY_ROW)):
        probabilities = expected.probabilities
        want = Scored(
            expected.predictions[index : index + 1],
            None if probabilities is None else probabilities[index : index + 1],
        )
        reason = disagreement(want, one_row.scores(row), float32=_f32(one_row))
        if reason is not None:
            return f"one row at a time: {reason}"
    return None


def _f32(runner: FormRunner) -> bool:
    return getattr(runner, "float", None) is np.float32


def _library_timings(
    subject: Subject, library: ModelCall, sample: Sample | None
) -> tuple[float | None, float | None]:
    if sample is None:
        return None, None
    try:
        one = one_row_us(library.scores, sample.one_rows(64))
        big = sample.repeated(BATCH_ROWS)
        return one, batch_rows_per_s(library.scores, big.model_input(), big.rows)
    except Exception:  # the model scored the sample; a failure here leaves it untimed
        log.debug("timing the library failed", exc_info=True)
        return None, None


# Forms that compute in float64 as the model does, preferred over a float32 runtime that is
# not clearly faster: within this factor of the fastest, the difference is as likely noise.
# Not the library for batch, though: a batch run that scores with it also pays for importing
# and loading it (seconds, and a few hundred MB for a tree library) which its timing on
# 10,000 rows does not show, so there it must be clearly faster than a form to be chosen.
_EXACT = {ONE_ROW: (COMPILED_LINEAR, LIBRARY), BATCH: (COMPILED_LINEAR,)}
CLEARLY_FASTER = 1.25


def _choose(tried: list[Tried]) -> dict[str, str]:
    verified = [t for t in tried if t.verified]
    one = [(t.one_row_us, t.kind) for t in verified if t.one_row_us is not None]
    rates = [
        ((CLEARLY_FASTER if t.kind == LIBRARY else 1.0) / t.batch_rows_per_s, t.kind)
        for t in verified
        if t.batch_rows_per_s
    ]
    return {ONE_ROW: _fastest(one, _EXACT[ONE_ROW]), BATCH: _fastest(rates, _EXACT[BATCH])}


def _fastest(costs: list[tuple[float, str]], exact_kinds: tuple[str, ...]) -> str:
    """The kind of the lowest cost, unless an exact form costs at most CLEARLY_FASTER times
    as much (the cheapest such one then)."""
    if not costs:
        return LIBRARY
    best, kind = min(costs)
    exact = [(c, k) for c, k in costs if k in exact_kinds and c <= best * CLEARLY_FASTER]
    return min(exact)[1] if exact and kind not in exact_kinds else kind


def _stored(artifacts: ArtifactStore, measured: _Measured, chosen: Mapping[str, str]) -> Tried:
    """Only the chosen forms' bytes are kept; the others' timings are the record."""
    tried, built = measured.tried, measured.built
    if built is None or tried.kind not in chosen.values():
        return tried
    blob = artifacts.put_bytes(built.data)
    return Tried(
        tried.kind,
        True,
        tried.reason,
        tried.one_row_us,
        tried.batch_rows_per_s,
        blob.sha256,
        blob.size,
        tried.details,
    )

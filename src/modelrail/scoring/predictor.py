"""A verified model version ready for the hot path: a float64 matrix (or a DataFrame of the
signature's types) in, predictions (and class probabilities, where the model has them) out.

A version registered with predictor forms (``scoring/forms``) is scored by the form chosen
for the workload, one row (serving) or batch, read back sha256-checked; the model itself is
then loaded only for what the form leaves to it (rows with a missing value, for a form that
was verified on complete rows only). Older versions are scored by the model, through a
compiled linear form where one reproduces it on the input example and rows around it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from modelrail.artifacts import ArtifactStore
from modelrail.entities import ModelVersion
from modelrail.errors import InvalidRequestError
from modelrail.registry import LoadedModel, load_model_version
from modelrail.scoring.columns import Columns
from modelrail.scoring.compiled import FloatMatrix, LinearForm, compile_model, form_from_bytes
from modelrail.scoring.evaluation import ModelCall, Scored
from modelrail.scoring.forms.record import (
    COMPILED_LINEAR,
    ONE_ROW,
    Tried,
    describe,
    forms_record,
)
from modelrail.scoring.forms.runtimes import FormRunner, load_form

__all__ = ["UNSCORABLE", "ModelCall", "Scored", "ScoringModel", "scoring_model_for"]

log = logging.getLogger("modelrail.scoring")
# Loads the model itself when a form leaves some rows to it (read and verified on first use).
LibraryLoader = Callable[[], "ScoringModel"]

NUMERIC_DTYPES = frozenset({"float64", "int64", "bool"})
_VERIFY_ROWS = 512


# Why a row whose score is NaN or infinite gets no prediction, in serving and in batch.
UNSCORABLE = (
    "the model's score is not a finite number (an input is outside the range the model "
    "can score, so large that its arithmetic overflowed, say)"
)


class ScoringModel:
    def __init__(self, loaded: LoadedModel, workload: str = ONE_ROW) -> None:
        self.loaded: LoadedModel | None = loaded
        self.version: ModelVersion = loaded.version
        self.workload = workload
        self.columns: tuple[str, ...] = tuple(c.name for c in loaded.version.signature.inputs)
        self.dtypes: tuple[str, ...] = tuple(c.dtype for c in loaded.version.signature.inputs)
        self.numeric = all(d in NUMERIC_DTYPES for d in self.dtypes)
        self.has_probabilities = loaded.version.signature.has_probabilities and callable(
            getattr(loaded.predictor, "predict_proba", None)
        )
        self._wants_frame = hasattr(loaded.predictor, "feature_names_in_")
        call = ModelCall(loaded.predictor, self.columns, self._wants_frame, self.has_probabilities)
        self._call = call.verified_single_pass(_example_input(loaded))
        self.form: FormRunner | None = None
        self._gaps_to_library = False
        self._float32 = False  # the form computes in float32: larger numbers go to the model
        self._library: LibraryLoader | None = None
        self.library_expected = False
        self.compiled: LinearForm | None = None
        if self.numeric:
            candidate = compile_model(loaded.predictor)
            if candidate is not None and self._agrees(candidate):
                self.compiled = candidate

    @classmethod
    def _without_model(cls, version: ModelVersion, workload: str) -> ScoringModel:
        scoring = cls.__new__(cls)
        scoring.loaded = None
        scoring.version = version
        scoring.workload = workload
        scoring.columns = tuple(c.name for c in version.signature.inputs)
        scoring.dtypes = tuple(c.dtype for c in version.signature.inputs)
        scoring.numeric = all(d in NUMERIC_DTYPES for d in scoring.dtypes)
        scoring.has_probabilities = version.signature.has_probabilities
        scoring._wants_frame = False
        scoring.form = None
        scoring._gaps_to_library = False
        scoring._float32 = False
        scoring._library = None
        scoring.library_expected = False
        scoring.compiled = None
        return scoring

    @classmethod
    def from_compiled(
        cls, version: ModelVersion, form: LinearForm, workload: str = ONE_ROW
    ) -> ScoringModel:
        """A model whose compiled form was verified against it when it was registered: it
        scores without loading the model itself (nor scikit-learn)."""
        scoring = cls._without_model(version, workload)
        scoring.numeric = True
        scoring.compiled = form
        return scoring

    @classmethod
    def from_form(
        cls,
        version: ModelVersion,
        form: FormRunner,
        *,
        workload: str = ONE_ROW,
        gaps_to_library: bool = False,
        library: LibraryLoader | None = None,
    ) -> ScoringModel:
        """A version scored by a verified stored form, run by its own runtime only; with
        ``gaps_to_library``, rows with a missing value go to the model (``library``)."""
        scoring = cls._without_model(version, workload)
        scoring.form = form
        scoring._gaps_to_library = gaps_to_library
        scoring._float32 = getattr(form, "float", None) is np.float32
        scoring._library = library
        return scoring

    def prefetch_library(self) -> None:
        """Load the model itself in the background when the form is expected to leave rows
        to it (missing values, ties), so the first such request does not stall a server's
        event loop for the seconds a load takes; otherwise it is loaded on first need."""
        if self._library is None or not self.library_expected:
            return
        threading.Thread(
            target=self._load_library_quietly, name="modelrail-library-prefetch", daemon=True
        ).start()

    def _load_library_quietly(self) -> None:
        assert self._library is not None
        try:
            self._library()
        except Exception:  # the request that needs it gets the error, with its context
            log.warning("%s: loading the model in the background failed", self.version.reference)

    @property
    def library_loaded(self) -> bool:
        """Whether the model itself is loaded beside the form (see ``prefetch_library``)."""
        return isinstance(self._library, _LoadOnce) and self._library.loaded is not None

    @property
    def predictor_kind(self) -> str:
        if self.compiled is not None:
            return COMPILED_LINEAR
        return self.form.kind if self.form is not None else self.version.flavor

    def describe(self) -> dict[str, Any]:
        """Which predictor serves each workload and why, what else was tried (for
        ``GET /v1/models``): ``serving`` names what this process scores with."""
        found = describe(forms_record(self.version), self.version.flavor)
        found["serving"] = {"workload": self.workload, "form": self.predictor_kind}
        if self._gaps_to_library:
            found["serving"]["rows_with_missing_values"] = self.version.flavor
        return found

    def score(self, X: FloatMatrix) -> Scored:
        """Score a (rows, columns) float64 matrix in signature column order."""
        if self.compiled is not None:
            predictions, probabilities = self.compiled.predict(X)
            return Scored(predictions, probabilities)
        if self.form is not None:
            return self._score_with_form(X)
        return self._score_with_model(X)

    def score_columns(self, columns: Sequence[FloatMatrix]) -> Scored | None:
        """Score one float64 array per input column (signature order) through the compiled
        form; None when there is none, or when a score came out non-finite (a NaN or
        infinite feature somewhere: the caller checks the rows itself)."""
        if self.compiled is None:
            return None
        found = self.compiled.predict_columns(columns)
        return None if found is None else Scored(*found)

    def score_input(self, data: Any) -> Scored:
        """A float64 matrix (all-numeric inputs), ``Columns`` or a DataFrame of the
        signature's types."""
        if isinstance(data, np.ndarray):
            return self.score(data)
        if isinstance(data, Columns):
            if self.form is not None and getattr(self.form, "takes_columns", False):
                return self._score_with_form(data)
            data = data.to_frame()
        return self.score_frame(data)

    def score_frame(self, frame: Any) -> Scored:
        """The general path for inputs with text columns: a DataFrame in signature order."""
        if self.form is not None:
            return self._score_with_form(frame)
        if self.compiled is not None:
            return self.score(frame[list(self.columns)].to_numpy(dtype=np.float64))
        return self._score_with_model(frame)

    def _score_with_model(self, data: Any) -> Scored:
        assert self.loaded is not None, "a compiled-only model scores through its form"
        return self._call.scores(data)

    def _score_with_form(self, data: Any) -> Scored:
        assert self.form is not None
        if self._library is None:
            return self.form.scores(data)
        left = _left_to_library(data, self._gaps_to_library, self._float32)
        if left is not None:
            return self._split(data, left)
        scored = self.form.scores(data)
        ties = scored.near_ties(self._float32)
        return scored if ties is None else self._split(data, ties, scored)

    def _split(
        self,
        data: Any,
        left: np.ndarray[Any, np.dtype[np.bool_]],
        scored: Scored | None = None,
    ) -> Scored:
        """Rows the form scores as the model does through the form; the rest through the
        model itself: rows with a missing value the form was not verified on, and near ties,
        where a form's own rounding (float32 sums, another order of adding the trees) could
        pick the other class of two the model scores equal (``scored``: the form's scores of
        every row, when already made)."""
        assert self.form is not None and self._library is not None
        library = self._library()
        if left.all():
            return library.score_input(data)
        if scored is None:
            scored = self.form.scores(_rows(data, ~left))
            ties = scored.near_ties(self._float32)
            if ties is not None:  # among the rows the form scored: those go to the model too
                scored = scored.without(ties)
                left = left.copy()
                left[np.flatnonzero(~left)[ties]] = True
        else:
            scored = scored.without(left)
        try:
            missing = library.score_input(_rows(data, left))
        except InvalidRequestError as exc:  # rows it names are counted in ``data``
            raise exc.for_rows(np.flatnonzero(left)) from exc
        order = np.concatenate([np.flatnonzero(~left), np.flatnonzero(left)])
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        predictions = _joined(scored.predictions, missing.predictions)[back]
        probabilities = None
        if scored.probabilities is not None and missing.probabilities is not None:
            joined = np.concatenate([scored.probabilities, missing.probabilities])
            probabilities = np.ascontiguousarray(joined[back])
        return Scored(predictions, probabilities)

    def _agrees(self, candidate: LinearForm) -> bool:
        assert self.loaded is not None
        rows = self.loaded.version.input_example.get("data", [])
        return form_agrees(self.loaded.predictor, candidate, self.columns, rows)


def scoring_model_for(
    artifacts: ArtifactStore, version: ModelVersion, workload: str = ONE_ROW
) -> ScoringModel:
    """The fastest verified way to score ``version`` for ``workload`` (``"one_row"`` for
    serving, ``"batch"``): the form chosen for it at registration or by ``models compile``
    (sha256-checked, run without the model's library), else the model itself. The model's
    own artifact is checked either way: a version whose artifact was damaged is refused
    whichever form would score it."""
    record = forms_record(version)
    chosen = None if record is None else record.chosen_for(workload)
    numeric = all(c.dtype in NUMERIC_DTYPES for c in version.signature.inputs)
    if chosen is None or chosen.sha256 is None:
        compiled = version.flavor_details.get("compiled")  # versions from before forms
        if isinstance(compiled, dict) and numeric and record is None:
            _verify_model_artifact(artifacts, version)
            data = artifacts.read_verified(
                str(compiled["sha256"]), size=int(compiled["size"]), label=version.reference
            )
            return ScoringModel.from_compiled(version, form_from_bytes(data), workload)
        return ScoringModel(load_model_version(artifacts, version), workload)
    _verify_model_artifact(artifacts, version)
    data = artifacts.read_verified(
        chosen.sha256, size=chosen.size, label=f"{version.reference} {chosen.kind} form"
    )
    return scoring_from_form(version, chosen, data, workload, lambda: _library(artifacts, version))


def _library(artifacts: ArtifactStore, version: ModelVersion) -> ScoringModel:
    return ScoringModel(load_model_version(artifacts, version))


def scoring_from_form(
    version: ModelVersion,
    chosen: Tried,
    data: bytes,
    workload: str,
    library: LibraryLoader,
) -> ScoringModel:
    """``version`` scored by the form ``chosen`` from its verified bytes ``data``; the
    model itself (``library``) when this machine lacks the form's runtime."""
    if chosen.kind == COMPILED_LINEAR:
        return ScoringModel.from_compiled(version, form_from_bytes(data), workload)
    try:
        runner = load_form(chosen.kind, data, chosen.details, version.signature, workload)
    except ImportError:
        log.warning(
            "%s: the %s form cannot run here (its runtime is not installed): scoring with "
            "the model itself",
            version.reference,
            chosen.kind,
        )
        return library()
    gaps = chosen.details.get("missing") == "library"
    scoring = ScoringModel.from_form(
        version, runner, workload=workload, gaps_to_library=gaps, library=_LoadOnce(library)
    )
    # Rows the form leaves to the model were seen at verification: the model will be needed.
    scoring.library_expected = gaps or bool(chosen.details.get("near_ties"))
    return scoring


def _verify_model_artifact(artifacts: ArtifactStore, version: ModelVersion) -> None:
    artifacts.verify(version.artifact_sha256, size=version.artifact_size, label=version.reference)


class _LoadOnce:
    """The model, loaded on first need (or by a prefetch) and kept."""

    def __init__(self, load: LibraryLoader) -> None:
        self._load = load
        self._lock = threading.Lock()
        self.loaded: ScoringModel | None = None

    def __call__(self) -> ScoringModel:
        with self._lock:  # a request arriving mid-prefetch waits for that load, not a second
            if self.loaded is None:
                self.loaded = self._load()
            return self.loaded


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _left_to_library(
    data: Any, gaps: bool, float32: bool
) -> np.ndarray[Any, np.dtype[np.bool_]] | None:
    """The rows a form leaves to the model, or None when there is none (vectorised checks):
    rows with a missing value (``gaps``: the form was verified on complete rows only), and
    rows with a number beyond float32's range for a float32 form (it would see infinity)."""
    if not gaps and not float32:
        return None
    numbers: np.ndarray[Any, Any] | None
    missing: np.ndarray[Any, Any] | None
    if isinstance(data, np.ndarray):
        if data.dtype.kind != "f" or not data.size:
            return None
        # One reduction for the common case: NaN makes the maximum NaN (which fails the
        # comparison), and a number beyond float32's range makes it too large.
        with np.errstate(invalid="ignore"):
            top = float(np.abs(data).max())
        if top <= (_FLOAT32_MAX if float32 else np.inf):
            return None
        numbers, missing = data, None
    elif isinstance(data, Columns):
        if data.complete and data.largest() <= (_FLOAT32_MAX if float32 else np.inf):
            return None
        numbers = data.numbers()
        gaps_found = data.missing_rows() if gaps else None
        missing = None if gaps_found is None else gaps_found[:, None]
    else:
        selected = data.select_dtypes(include="number")
        numbers = selected.to_numpy(dtype=np.float64) if selected.shape[1] else None
        missing = data.isna().to_numpy() if gaps else None
    left: np.ndarray[Any, np.dtype[np.bool_]] | None = None
    if numbers is not None and numbers.size:
        with np.errstate(invalid="ignore"):
            if gaps and missing is None:
                left = np.asarray(np.isnan(numbers).any(axis=1), dtype=bool)
            if float32:
                huge = np.asarray((np.abs(numbers) > _FLOAT32_MAX).any(axis=1), dtype=bool)
                left = huge if left is None else left | huge
    if missing is not None and missing.any():
        rows = np.asarray(missing.any(axis=1), dtype=bool)
        left = rows if left is None else left | rows
    return left if left is not None and left.any() else None


def _rows(data: Any, rows: np.ndarray[Any, np.dtype[np.bool_]]) -> Any:
    if isinstance(data, np.ndarray):
        return data[rows]
    if isinstance(data, Columns):
        return data.take(rows)
    return data[rows].reset_index(drop=True)


def _joined(first: np.ndarray[Any, Any], second: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if first.dtype == second.dtype:
        return np.concatenate([first, second])
    return np.concatenate([first.astype(object), second.astype(object)])


def form_agrees(model: Any, candidate: LinearForm, columns: tuple[str, ...], rows: Any) -> bool:
    """Whether ``candidate`` reproduces ``model`` on the example rows and rows spread
    around them: exactly for classes, to 1e-9 for probabilities and regression values."""
    sample = _verification_sample(rows, len(columns))
    if sample is None:
        return False
    wants_frame = hasattr(model, "feature_names_in_")
    has_probabilities = callable(getattr(model, "predict_proba", None))
    expected = ModelCall(model, columns, wants_frame, has_probabilities).scores(sample)
    # Both ways of computing the form (through a matrix, and column by column) are checked.
    try:
        by_matrix = candidate.predict(sample.copy())
        by_columns = candidate.predict_columns([sample[:, j].copy() for j in range(len(columns))])
    except (ValueError, TypeError, IndexError, FloatingPointError):
        return False
    return by_columns is not None and all(
        _same_scores(candidate, expected, *found) for found in (by_matrix, by_columns)
    )


def _same_scores(
    candidate: LinearForm,
    expected: Scored,
    predictions: np.ndarray[Any, Any],
    probabilities: FloatMatrix | None,
) -> bool:
    if predictions.shape != expected.predictions.shape:
        return False
    if candidate.link == "identity":
        # Regression values differ from scikit-learn's in the last bit at most.
        if not np.allclose(predictions, expected.predictions, rtol=1e-9, atol=1e-12):
            return False
    elif not np.array_equal(predictions, expected.predictions):
        return False
    if (expected.probabilities is None) != (probabilities is None):
        return False
    if probabilities is not None and expected.probabilities is not None:
        return bool(np.allclose(probabilities, expected.probabilities, rtol=1e-9, atol=1e-12))
    return True


def _example_input(loaded: LoadedModel) -> Any:
    """The version's input example as the model takes it (None when it has none)."""
    try:
        return loaded.input_example()
    except (KeyError, ValueError, TypeError):
        return None


def _verification_sample(rows: Any, width: int) -> FloatMatrix | None:
    """The input example plus rows spread around it, as a float64 matrix."""
    try:
        example = np.asarray(rows, dtype=np.float64).reshape(-1, width)
    except (TypeError, ValueError):
        return None
    if example.size == 0 or not np.isfinite(example).all():
        return None
    rng = np.random.default_rng(0)
    centre = example.mean(axis=0)
    spread = np.maximum(example.std(axis=0), np.abs(centre) * 0.5) + 1e-3
    generated = centre + rng.normal(size=(_VERIFY_ROWS, width)) * spread * 3
    return np.vstack([example, generated])

"""A verified model version ready for the hot path: a float64 matrix in, predictions
(and class probabilities, where the model has them) out.

When a compiled form exists it is checked against the model itself on the input
example and on a few hundred generated rows; only an exact match of predictions
(and probabilities equal to 1e-9) lets it replace the model's own ``predict``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelrail.artifacts import ArtifactStore
from modelrail.entities import ModelVersion
from modelrail.registry import LoadedModel, load_model_version
from modelrail.scoring.compiled import FloatMatrix, LinearForm, compile_model, form_from_bytes
from modelrail.scoring.evaluation import ModelCall, Scored

__all__ = ["UNSCORABLE", "ModelCall", "Scored", "ScoringModel", "scoring_model_for"]

NUMERIC_DTYPES = frozenset({"float64", "int64", "bool"})
_VERIFY_ROWS = 512


# Why a row whose score is NaN or infinite gets no prediction, in serving and in batch.
UNSCORABLE = (
    "the model's score is not a finite number (an input is outside the range the model "
    "can score, so large that its arithmetic overflowed, say)"
)


class ScoringModel:
    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded: LoadedModel | None = loaded
        self.version: ModelVersion = loaded.version
        self.columns: tuple[str, ...] = tuple(c.name for c in loaded.version.signature.inputs)
        self.dtypes: tuple[str, ...] = tuple(c.dtype for c in loaded.version.signature.inputs)
        self.numeric = all(d in NUMERIC_DTYPES for d in self.dtypes)
        self.has_probabilities = loaded.version.signature.has_probabilities and callable(
            getattr(loaded.predictor, "predict_proba", None)
        )
        self._wants_frame = hasattr(loaded.predictor, "feature_names_in_")
        call = ModelCall(loaded.predictor, self.columns, self._wants_frame, self.has_probabilities)
        self._call = call.verified_single_pass(_example_input(loaded))
        self.compiled: LinearForm | None = None
        if self.numeric:
            candidate = compile_model(loaded.predictor)
            if candidate is not None and self._agrees(candidate):
                self.compiled = candidate

    @classmethod
    def from_compiled(cls, version: ModelVersion, form: LinearForm) -> ScoringModel:
        """A model whose compiled form was verified against it when it was registered: it
        scores without loading the model itself (nor scikit-learn)."""
        scoring = cls.__new__(cls)
        scoring.loaded = None
        scoring.version = version
        scoring.columns = tuple(c.name for c in version.signature.inputs)
        scoring.dtypes = tuple(c.dtype for c in version.signature.inputs)
        scoring.numeric = True
        scoring.has_probabilities = version.signature.has_probabilities
        scoring._wants_frame = False
        scoring.compiled = form
        return scoring

    @property
    def predictor_kind(self) -> str:
        return "compiled" if self.compiled is not None else self.version.flavor

    def score(self, X: FloatMatrix) -> Scored:
        """Score a (rows, columns) float64 matrix in signature column order."""
        if self.compiled is not None:
            predictions, probabilities = self.compiled.predict(X)
            return Scored(predictions, probabilities)
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
        """A float64 matrix (all-numeric inputs) or a DataFrame of the signature's types."""
        return self.score(data) if isinstance(data, np.ndarray) else self.score_frame(data)

    def score_frame(self, frame: Any) -> Scored:
        """The general path for inputs with text columns: a DataFrame in signature order."""
        return self._score_with_model(frame)

    def _score_with_model(self, data: Any) -> Scored:
        assert self.loaded is not None, "a compiled-only model scores through its form"
        return self._call.scores(data)

    def _agrees(self, candidate: LinearForm) -> bool:
        assert self.loaded is not None
        rows = self.loaded.version.input_example.get("data", [])
        return form_agrees(self.loaded.predictor, candidate, self.columns, rows)


def scoring_model_for(artifacts: ArtifactStore, version: ModelVersion) -> ScoringModel:
    """The fastest verified way to score ``version``: its compiled form stored at
    registration (sha256-checked, no model or scikit-learn loaded) when it has one, else
    the model itself."""
    compiled = version.flavor_details.get("compiled")
    numeric = all(c.dtype in NUMERIC_DTYPES for c in version.signature.inputs)
    if isinstance(compiled, dict) and numeric:
        # The model's own artifact is checked too: a version whose artifact was damaged is
        # refused whichever form would score it.
        artifacts.verify(
            version.artifact_sha256, size=version.artifact_size, label=version.reference
        )
        data = artifacts.read_verified(
            str(compiled["sha256"]), size=int(compiled["size"]), label=version.reference
        )
        return ScoringModel.from_compiled(version, form_from_bytes(data))
    return ScoringModel(load_model_version(artifacts, version))


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

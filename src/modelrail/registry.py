"""Registering model versions and loading them back, verified."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from modelrail.artifacts import ArtifactStore
from modelrail.entities import ModelVersion, Signature
from modelrail.errors import InvalidInputError, ModelFlavorError, ModelRoundTripError
from modelrail.flavors import SaveOptions, flavor_for, get_flavor
from modelrail.refs import validate_name
from modelrail.signatures import infer_signature
from modelrail.store.models_repo import ModelRepository

log = logging.getLogger("modelrail")


class VersionRecorder(Protocol):
    """Where ``register_model`` records a version: the store's ``ModelRepository``, or a
    team server's (``remote.repositories.RemoteModels``)."""

    def create_version(
        self,
        *,
        name: str,
        run_id: str | None,
        flavor: str,
        artifact_sha256: str,
        artifact_size: int,
        signature: Signature,
        input_example: Any,
        flavor_details: Mapping[str, Any],
        description: str,
        created_by: str,
        forms: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> ModelVersion: ...


def register_model(
    repository: VersionRecorder,
    artifacts: ArtifactStore,
    model: Any,
    *,
    name: str,
    run_id: str | None,
    input_example: Any,
    created_by: str,
    description: str = "",
    options: SaveOptions = SaveOptions(),
) -> ModelVersion:
    """Save ``model`` content-addressed, then record the version in one transaction.

    The file is stored before the row is written: a crash in between leaves an
    unreferenced blob, never a version whose artifact is missing.
    """
    validate_name("model", name)
    if input_example is None:
        raise InvalidInputError(
            f"log_model({name!r}) needs input_example=...: a few rows of model input, "
            "from which the signature is inferred and the smoke test runs"
        )
    flavor = flavor_for(model, options)
    with tempfile.TemporaryDirectory(prefix="modelrail-save-") as tmp:
        path = Path(tmp) / "model.bin"
        try:
            details = flavor.save(model, path, options)
        except ModelRoundTripError:
            if not options.allow_pickle:
                raise
            flavor = get_flavor("joblib")  # what the user allowed when the safe format fails
            details = flavor.save(model, path, options)
        predictor = flavor.predictor(model, details)
        # Inferred before anything is stored: an example the model cannot score stores nothing.
        signature, example = infer_signature(predictor, input_example)
        blob = artifacts.put_file(path)
        # Derived from the model, so never a reason to refuse it: a form that cannot be
        # built or does not agree is recorded as such, and the library serves.
        forms = _forms(artifacts, model, predictor, flavor.name, signature, example)
    return repository.create_version(
        name=name,
        run_id=run_id,
        flavor=flavor.name,
        artifact_sha256=blob.sha256,
        artifact_size=blob.size,
        signature=signature,
        input_example=example,
        flavor_details=details,
        description=description,
        created_by=created_by,
        forms=forms,
    )


def _forms(
    artifacts: ArtifactStore,
    model: Any,
    predictor: Any,
    flavor: str,
    signature: Signature,
    example: dict[str, Any],
) -> dict[str, Any] | None:
    """The version's predictor forms record (``scoring/forms``)."""
    import pandas as pd

    from modelrail.scoring.forms.build import build_forms
    from modelrail.scoring.forms.converters import Subject

    frame = pd.DataFrame(example.get("data", []), columns=example.get("columns", []))
    subject = Subject(model, predictor, flavor, signature, frame)
    try:
        return build_forms(artifacts, subject).to_json()
    except Exception:  # a bug in building forms must not stop a registration
        log.warning("modelrail: building the predictor forms failed", exc_info=True)
        return None


def compile_version(
    repository: ModelRepository, artifacts: ArtifactStore, version: ModelVersion, *, created_by: str
) -> ModelVersion:
    """Build (again) the predictor forms of a registered version, e.g. one registered before
    forms existed or before a runtime was installed, and record them with it. The model is
    loaded from its verified artifact; the version itself does not change."""
    loaded = load_model_version(artifacts, version)
    example = version.input_example if isinstance(version.input_example, dict) else {}
    forms = _forms(
        artifacts, loaded.model, loaded.predictor, version.flavor, version.signature, example
    )
    if forms is None:
        raise ModelFlavorError(f"building the predictor forms of {version.reference} failed")
    return repository.set_forms(version.model, version.version, forms, created_by=created_by)


@dataclass(frozen=True)
class LoadedModel:
    """A verified model version, ready to predict: ``model`` is the library's own object
    (an ``XGBClassifier``, a statsmodels result ...), ``predictor`` what predicts with it
    over the signature's columns (the model itself where it has ``predict``)."""

    version: ModelVersion
    model: Any
    predictor: Any = None

    def __post_init__(self) -> None:
        if self.predictor is None:
            object.__setattr__(self, "predictor", self.model)

    def predict(self, data: Any) -> np.ndarray[Any, Any]:
        return np.asarray(self.predictor.predict(self._ordered(data)))

    def predict_proba(self, data: Any) -> np.ndarray[Any, Any] | None:
        method = getattr(self.predictor, "predict_proba", None)
        return None if method is None else np.asarray(method(self._ordered(data)))

    def input_example(self) -> Any:
        import pandas as pd

        example = self.version.input_example
        frame = pd.DataFrame(example["data"], columns=example["columns"])
        return frame if self._expects_names() else frame.to_numpy()

    def _expects_names(self) -> bool:
        return hasattr(self.predictor, "feature_names_in_")

    def _ordered(self, data: Any) -> Any:
        # A DataFrame with the right columns in another order must still score correctly.
        columns = getattr(data, "columns", None)
        expected = [c.name for c in self.version.signature.inputs]
        if columns is not None and list(columns) != expected and set(expected) <= set(columns):
            return data[expected]
        return data


def load_model_version(artifacts: ArtifactStore, version: ModelVersion) -> LoadedModel:
    data = artifacts.read_verified(
        version.artifact_sha256, size=version.artifact_size, label=version.reference
    )
    return loaded_from_bytes(version, data)


def loaded_from_bytes(version: ModelVersion, data: bytes) -> LoadedModel:
    """``version`` loaded from its artifact's content, which the caller has verified."""
    try:
        flavor = get_flavor(version.flavor)
        model = flavor.load(data, version.flavor_details)
        return LoadedModel(version, model, flavor.predictor(model, version.flavor_details))
    except ModelFlavorError as exc:
        # A flavor sees bytes, not the version: name it here (a missing library, a file
        # from a newer library version ...).
        raise ModelFlavorError(f"cannot load {version.reference}: {exc.message}") from exc

"""Any other object with ``predict``, saved with joblib, only when the user opts in.

Loading a pickle can run any code, so this flavor is used only with ``allow_pickle=True``; the
version is recorded as unsafe, an environment's policy can refuse it, and every load happens
after the artifact's sha256 has been checked against the registry.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelrail.errors import ModelFlavorError
from modelrail.flavors.base import SaveOptions


class PickleFlavor:
    name = "joblib"

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        import joblib

        try:
            joblib.dump(model, path)
        except Exception as exc:  # pickling errors come in many types
            raise ModelFlavorError(
                f"cannot save {type(model).__name__} with joblib: {exc}"
            ) from exc
        return {
            "format": "joblib",
            "estimator": f"{type(model).__module__}.{type(model).__name__}",
            "packages": {"joblib": joblib.__version__},
            "unsafe": True,
        }

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        import joblib

        try:
            return joblib.load(io.BytesIO(data))
        except Exception as exc:
            raise ModelFlavorError(f"cannot load joblib model: {exc}") from exc

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        return model

"""Any other object with ``predict``, saved with joblib.

Pickle can run code when loaded, so this flavor is only a fallback and every
load happens after the artifact's sha256 has been checked against the registry.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelrail.errors import ModelFlavorError


class PickleFlavor:
    name = "joblib"

    def accepts(self, model: object) -> bool:
        return callable(getattr(model, "predict", None))

    def save(self, model: object, path: Path) -> dict[str, Any]:
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
        }

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        import joblib

        try:
            return joblib.load(io.BytesIO(data))
        except Exception as exc:
            raise ModelFlavorError(f"cannot load joblib model: {exc}") from exc

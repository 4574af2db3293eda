"""scikit-learn estimators and pipelines, saved with skops: loading never runs pickle.

skops refuses types it does not know unless told to trust them. The types a
model needs are recorded when it is logged (by the user who logged it) and
trusted again at load time only after the file's sha256 matched the registry,
so an edited file cannot slip new types in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelrail.errors import ModelFlavorError, ModelRoundTripError
from modelrail.flavors.base import SaveOptions


class SklearnFlavor:
    name = "sklearn"

    def save(self, model: Any, path: Path, options: SaveOptions) -> dict[str, Any]:
        import numpy
        import sklearn
        import skops
        import skops.io as sio

        try:
            sio.dump(model, path)
            untrusted = sorted(sio.get_untrusted_types(file=path))
        except Exception as exc:  # skops raises plain TypeError/ValueError for unsupported parts
            raise ModelFlavorError(f"skops cannot save this {type(model).__name__}: {exc}") from exc
        try:
            # skops writes some objects it cannot read back (pd.NA as an imputer's
            # missing_values, for one): such a version could never be loaded or served.
            sio.load(path, trusted=untrusted)
        except Exception as exc:
            raise ModelRoundTripError(
                f"skops saved this {type(model).__name__} but cannot load it back "
                f"({type(exc).__name__}: {exc}), so it was not registered; log it with "
                "allow_pickle=True to save it with pickle instead (marked unsafe)"
            ) from exc
        return {
            "format": "skops",
            "trusted_types": untrusted,
            "estimator": f"{type(model).__module__}.{type(model).__name__}",
            "packages": {
                "scikit-learn": sklearn.__version__,
                "numpy": numpy.__version__,
                "skops": skops.__version__,
            },
        }

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        import skops.io as sio

        trusted = list(details.get("trusted_types", []))
        try:
            return sio.loads(data, trusted=trusted)
        except Exception as exc:
            raise ModelFlavorError(f"cannot load skops model: {exc}") from exc

    def predictor(self, model: Any, details: Mapping[str, Any]) -> Any:
        return model

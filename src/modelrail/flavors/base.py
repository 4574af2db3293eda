"""The flavor protocol and the lookup from a model object or a flavor name."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from modelrail.errors import ModelFlavorError


class Flavor(Protocol):
    name: str

    def accepts(self, model: object) -> bool:
        """Whether this flavor knows how to save ``model``."""

    def save(self, model: object, path: Path) -> dict[str, Any]:
        """Write ``model`` to the single file ``path``; return details needed to load it."""

    def load(self, data: bytes, details: Mapping[str, Any]) -> Any:
        """Load the object saved by ``save`` from the file's content, already checked
        against its sha256 (never from a path, which could change after the check)."""


def _flavors() -> tuple[Flavor, ...]:
    from modelrail.flavors.pickled import PickleFlavor
    from modelrail.flavors.sklearn import SklearnFlavor

    return (SklearnFlavor(), PickleFlavor())


def flavor_for(model: object) -> Flavor:
    if not callable(getattr(model, "predict", None)):
        raise ModelFlavorError(
            f"cannot log a model of type {type(model).__module__}.{type(model).__name__}: "
            "it has no predict() method"
        )
    for flavor in _flavors():
        if flavor.accepts(model):
            return flavor
    raise ModelFlavorError(f"no flavor can save a model of type {type(model).__name__}")


def get_flavor(name: str) -> Flavor:
    for flavor in _flavors():
        if flavor.name == name:
            return flavor
    raise ModelFlavorError(f"unknown model flavor {name!r}: this modelrail cannot load it")

"""Model flavors: how a kind of model is saved to one file and loaded back."""

from __future__ import annotations

from modelrail.flavors.base import Flavor, SaveOptions, flavor_for, get_flavor

__all__ = ["Flavor", "SaveOptions", "flavor_for", "get_flavor"]

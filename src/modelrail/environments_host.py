"""What moving versions through the environments needs of the client it runs in.

``Client`` is one; the ``Environments`` service depends on this protocol, not on ``Client``,
so the two modules do not import each other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.config import Settings
    from modelrail.entities import Run
    from modelrail.policy import PromotionPolicy
    from modelrail.store.db import Database
    from modelrail.store.models_repo import ModelRepository

__all__ = ["EnvironmentHost"]


class EnvironmentHost(Protocol):
    @property
    def db(self) -> Database:
        """Where changes and their history lines are written, one transaction each."""
        ...

    @property
    def models(self) -> ModelRepository: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    @property
    def user(self) -> str:
        """Who acts when a change names nobody."""
        ...

    @property
    def settings(self) -> Settings: ...

    @property
    def policy(self) -> PromotionPolicy: ...

    def policy_in_force(self) -> tuple[PromotionPolicy, int | None]: ...

    def get_run(self, run_id: str) -> Run: ...

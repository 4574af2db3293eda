"""The environment chain through ``Client``: promote, approve, reject, roll back, and read
the board, the history and the approval requests.

``EnvironmentMethods`` is mixed into ``Client`` (it is not used on its own); every method
delegates to the ``Environments`` service. ``actor`` names the person acting when it is not
the client's user (the dashboard passes its logged-in user).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from modelrail.entities import Holding
from modelrail.policy import EnvironmentPolicy

if TYPE_CHECKING:
    from modelrail.config import Settings
    from modelrail.entities import (
        ApprovalRequest,
        EnvironmentEvent,
        GateResult,
        PromotionOutcome,
    )
    from modelrail.environments import Environments
    from modelrail.environments_host import EnvironmentHost
    from modelrail.policy import PromotionPolicy


# How often a local client reads the store while it waits for a change.
CHANGE_POLL_S = 0.5


@dataclass(frozen=True)
class EnvironmentView:
    name: str
    policy: EnvironmentPolicy
    holdings: Mapping[str, Holding]


class EnvironmentMethods:
    """Promotion, approval, rollback and history: the environment half of ``Client``."""

    settings: Settings
    _environments: Environments | None = None

    if TYPE_CHECKING:  # PolicyMethods, mixed into Client too, defines it

        @property
        def policy(self) -> PromotionPolicy: ...

    @property
    def environment_service(self) -> Environments:
        """Promotion, approval, rollback and history across the environment chain."""
        if self._environments is None:
            from modelrail.environments import Environments

            self._environments = Environments(cast("EnvironmentHost", self))
        return self._environments

    def promote(
        self,
        reference: str,
        to: str,
        *,
        reason: str = "",
        force: bool = False,
        if_holds: int | None = None,
        actor: str | None = None,
    ) -> PromotionOutcome:
        """Move a version into environment ``to`` through its gates (or open an approval).

        With ``if_holds=N`` it only happens while ``to`` still holds version N.
        """
        return self.environment_service.promote(
            reference, to, reason=reason, force=force, if_holds=if_holds, actor=actor
        )

    def check_promotion(self, reference: str, to: str) -> tuple[GateResult, ...]:
        """The gate results promoting ``reference`` into ``to`` would see now, without
        changing anything."""
        return self.environment_service.check(reference, to)

    def approval_requests(self, status: str | None = "pending") -> list[ApprovalRequest]:
        """The approval requests with ``status`` (``pending``, ``approved``, ``rejected``,
        ``expired``; None: all), oldest first."""
        return self.environment_service.requests(status)

    def approval_request(self, request_id: int) -> ApprovalRequest:
        """One approval request, whatever its status."""
        return self.environment_service.repo.get_request(request_id)

    def approve(
        self, request_id: int, *, reason: str = "", actor: str | None = None
    ) -> PromotionOutcome:
        """Approve a waiting request (by someone other than its requester) and carry out
        its promotion."""
        return self.environment_service.approve(request_id, reason=reason, actor=actor)

    def reject(
        self, request_id: int, *, reason: str = "", actor: str | None = None
    ) -> ApprovalRequest:
        """Turn a waiting request down; nothing moves."""
        return self.environment_service.reject(request_id, reason=reason, actor=actor)

    def rollback(
        self,
        model: str,
        environment: str,
        *,
        to_version: int | None = None,
        reason: str = "",
        actor: str | None = None,
    ) -> EnvironmentEvent:
        """Put back the version ``environment`` held before (or ``to_version``, one it held)."""
        return self.environment_service.rollback(
            model, environment, to_version=to_version, reason=reason, actor=actor
        )

    def history(
        self, model: str | None = None, environment: str | None = None
    ) -> list[EnvironmentEvent]:
        """Every change of what an environment holds, oldest first."""
        return self.environment_service.history(model, environment)

    def board(self) -> list[Holding]:
        """What every environment holds, per model."""
        return self.environment_service.board()

    def latest_event_id(self) -> int:
        """The newest history event's id (0 before any): it grows with every change."""
        return self.environment_service.repo.latest_event_id()

    def wait_for_change(self, after: int, timeout_s: float = 25.0) -> int:
        """The id of the newest history event, as soon as it is beyond ``after`` or when
        ``timeout_s`` has passed. What a server watching an environment waits on: here the
        store is read every half second; a team server's client is told as it happens."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            newest = self.latest_event_id()
            if newest > after or time.monotonic() >= deadline:
                return newest
            time.sleep(min(CHANGE_POLL_S, max(0.0, deadline - time.monotonic())))

    def environments(self) -> list[EnvironmentView]:
        """The chain in order, each environment with its gates, settings and holdings."""
        holdings = self.board()
        policy = self.policy
        return [
            EnvironmentView(
                name=name,
                policy=policy.environments[name],
                holdings={h.model: h for h in holdings if h.environment == name},
            )
            for name in policy.chain
        ]

"""Moving model versions through the environment chain: promote, approve, reject,
roll back, and read the board and the history.

Every change of what an environment holds is a compare-and-swap plus an event
in one transaction, so racing writers never lose a change or a history line.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar, cast

from modelrail.entities import (
    ApprovalRequest,
    EnvironmentEvent,
    GateResult,
    Holding,
    ModelVersion,
    PromotionOutcome,
    Run,
)
from modelrail.errors import (
    ApprovalError,
    ConflictError,
    GateFailedError,
    ModelVersionNotFoundError,
    PromotionError,
)
from modelrail.gates import (
    GateContext,
    evaluate,
    needs_live_evidence,
    safe_format,
    verify_artifacts,
)
from modelrail.notify import notify_change
from modelrail.refs import Ref
from modelrail.store.environments_repo import (
    HOLDER_ACTIONS,
    EnvironmentRepository,
    request_waiting,
)

if TYPE_CHECKING:
    from modelrail.environments_host import EnvironmentHost
    from modelrail.monitoring.evidence import LiveEvidence
    from modelrail.policy import GatePolicy, PromotionPolicy

P = ParamSpec("P")
R = TypeVar("R")


def _judged(method: Callable[P, R]) -> Callable[P, R]:
    """Run ``method`` under one policy from start to end (see ``Environments.policy``)."""

    @functools.wraps(method)
    def judged(*args: P.args, **kwargs: P.kwargs) -> R:
        self = cast("Environments", args[0])
        if self._snapshot.held is not None:
            return method(*args, **kwargs)
        self._snapshot.held = self.client.policy_in_force()
        try:
            return method(*args, **kwargs)
        finally:
            self._snapshot.held = None

    return judged


class _Snapshot(threading.local):
    held: tuple[PromotionPolicy, int | None] | None = None


class Environments:
    def __init__(self, client: EnvironmentHost) -> None:
        self.client = client
        self.repo = EnvironmentRepository(client.db)
        self._snapshot = _Snapshot()

    @property
    def policy(self) -> PromotionPolicy:
        """The policy in force. A change (promote, approve, ...) reads it once and is judged
        by that one version throughout, even if an admin applies another meanwhile; the
        history names it (``policy_version``)."""
        held = self._snapshot.held
        return held[0] if held is not None else self.client.policy

    @property
    def _policy_version(self) -> int | None:
        held = self._snapshot.held
        return held[1] if held is not None else self.client.policy_in_force()[1]

    # -- reading ---------------------------------------------------------------------------

    def board(self) -> list[Holding]:
        return self.repo.holdings()

    def history(
        self, model: str | None = None, environment: str | None = None
    ) -> list[EnvironmentEvent]:
        if environment is not None:
            self.policy.environment(environment)
        return self.repo.events(model, environment)

    def requests(self, status: str | None = "pending") -> list[ApprovalRequest]:
        return self.repo.requests(status)

    def resolve(self, model: str, environment: str) -> ModelVersion:
        self.policy.environment(environment)
        holding = self.repo.holding(model, environment)
        if holding is None:
            raise ModelVersionNotFoundError(f"{environment} holds no version of {model!r}")
        return self.client.models.get_version(model, holding.version)

    # -- promotion --------------------------------------------------------------------------

    @_judged
    def check(self, reference: str, to: str) -> tuple[GateResult, ...]:
        """The gate results ``promote`` would see, without changing anything."""
        version = self._version(reference)
        self._check_chain(version, to)
        return self._evaluate(version, to, self.repo.holding(version.model, to))

    @_judged
    def promote(
        self,
        reference: str,
        to: str,
        *,
        reason: str = "",
        force: bool = False,
        actor: str | None = None,
        if_holds: int | None = None,
    ) -> PromotionOutcome:
        """Promote ``reference`` into ``to``.

        ``if_holds`` makes the promotion conditional, like HTTP's If-Match: it only
        happens while ``to`` still holds that version, so a pipeline never replaces a
        version it has not seen.
        """
        actor = actor or self.client.user
        version = self._version(reference)
        env = self.policy.environment(to)
        holding = self.repo.holding(version.model, to)
        if if_holds is not None and (holding is None or holding.version != if_holds):
            now = f"version {holding.version}" if holding else "nothing"
            raise ConflictError(
                f"{version.model}@{to} holds {now}, not version {if_holds}: "
                "another promotion won; nothing was changed"
            )
        if holding is not None and holding.version == version.version:
            raise PromotionError(f"{to} already holds {version.model} version {version.version}")
        self._no_pending_request(version, to)
        if force:
            if not reason.strip():
                raise PromotionError(
                    "{force} skips the gates, so it needs a {reason} saying why",
                    params=("reason", "force"),
                )
            # The gates are skipped; the pickle policy and the integrity of what will be
            # loaded never are.
            self._refuse_unsafe(version, to, "{force}", params=("force",))
            verify_artifacts(self.client.artifacts, version)
            event = self._change(version, to, holding, "promote", actor, reason, (), forced=True)
            return self._outcome(version, to, holding, (), event, None)
        self._check_chain(version, to)
        results = self._evaluate(version, to, holding)
        _raise_on_failure(version, to, results)
        if env.gates.approval:
            # Written only if the environment still holds what the checks saw (``if_holds``
            # among them), and only if no request for this version waits: both are checked
            # by the database in the transaction that writes the request.
            with self.client.db.write() as conn:
                request = self.repo.create_request(
                    conn,
                    model=version.model,
                    version=version.version,
                    environment=to,
                    expected=holding,
                    if_holds=if_holds,
                    requested_by=actor,
                    reason=reason,
                    gates=results,
                    expires_in_s=env.gates.approval_expires_hours * 3600,
                )
                self.repo.append_event(
                    conn,
                    model=version.model,
                    environment=to,
                    action="request",
                    from_version=holding.version if holding else None,
                    to_version=version.version,
                    actor=actor,
                    reason=reason,
                    gates=results,
                    request_id=request.id,
                    policy_version=self._policy_version,
                )
            return self._outcome(version, to, holding, results, None, request)
        self._verify_unless_smoke_tested(version, to)
        event = self._change(version, to, holding, "promote", actor, reason, results)
        return self._outcome(version, to, holding, results, event, None)

    @_judged
    def approve(
        self, request_id: int, *, reason: str = "", actor: str | None = None
    ) -> PromotionOutcome:
        actor = actor or self.client.user
        request = self._pending(request_id, actor, deciding="approve")
        version = self.client.models.get_version(request.model, request.version)
        holding = self.repo.holding(request.model, request.environment)
        if holding is not None and holding.version == request.version:
            raise PromotionError(
                f"{request.environment} already holds {request.model} version {request.version}; "
                f"reject request {request_id} to close it"
            )
        condition = self.repo.request_if_holds(request_id)
        if condition is not None and (holding is None or holding.version != condition):
            now = f"version {holding.version}" if holding else "nothing"
            raise ConflictError(
                f"request {request_id} was opened with {{if_holds}} {condition}, but "
                f"{request.model}@{request.environment} now holds {now}: nothing was changed; "
                "reject it and promote again",
                params=("if_holds",),
            )
        # The environment may have changed since the request: judge it as it is now.
        results = self._evaluate(version, request.environment, holding)
        _raise_on_failure(version, request.environment, results)
        self._verify_unless_smoke_tested(version, request.environment)
        with self.client.db.write() as conn:
            self.repo.decide_request(
                conn, request_id, status="approved", actor=actor, reason=reason
            )
            event = self.repo.change_holder(
                model=request.model,
                environment=request.environment,
                expected=holding,
                version=request.version,
                action="approve",
                actor=actor,
                reason=reason or f"approved request {request_id} by {request.requested_by}",
                gates=results,
                request_id=request_id,
                policy_version=self._policy_version,
                conn=conn,
            )
        self._notify(event, version)
        return self._outcome(version, request.environment, holding, results, event, request)

    @_judged
    def reject(
        self, request_id: int, *, reason: str = "", actor: str | None = None
    ) -> ApprovalRequest:
        actor = actor or self.client.user
        request = self._pending(request_id, actor, deciding="reject")
        holding = self.repo.holding(request.model, request.environment)
        with self.client.db.write() as conn:
            self.repo.decide_request(
                conn, request_id, status="rejected", actor=actor, reason=reason
            )
            self.repo.append_event(
                conn,
                model=request.model,
                environment=request.environment,
                action="reject",
                from_version=holding.version if holding else None,
                to_version=request.version,
                actor=actor,
                reason=reason,
                request_id=request_id,
                policy_version=self._policy_version,
            )
        return self.repo.get_request(request_id)

    # -- rollback -----------------------------------------------------------------------------

    @_judged
    def rollback(
        self,
        model: str,
        environment: str,
        *,
        to_version: int | None = None,
        reason: str = "",
        actor: str | None = None,
    ) -> EnvironmentEvent:
        actor = actor or self.client.user
        self.policy.environment(environment)
        holding = self.repo.holding(model, environment)
        if holding is None:
            raise PromotionError(
                f"{environment} holds no version of {model!r}: nothing to roll back"
            )
        events = self.repo.events(model, environment)
        stack = holder_stack(events)
        if to_version is None:
            if len(stack) < 2:
                raise PromotionError(
                    f"cannot roll back {model}@{environment}: version {holding.version} is the "
                    "first version in its history there"
                )
            to_version = stack[-2]
        else:
            ever = {e.to_version for e in events if e.action in HOLDER_ACTIONS}
            if to_version not in ever:
                held = ", ".join(str(v) for v in sorted(v for v in ever if v is not None))
                raise PromotionError(
                    f"version {to_version} of {model} was never in {environment} "
                    f"(it held: {held}); a rollback only returns to a version that was there"
                )
            if to_version == holding.version:
                raise PromotionError(f"{environment} already holds {model} version {to_version}")
        target = self.client.models.get_version(model, to_version)
        # Never roll back onto a pickle the environment now refuses, nor onto a model file or
        # compiled form that no longer verifies.
        self._refuse_unsafe(target, environment, "a rollback")
        verify_artifacts(self.client.artifacts, target)
        return self._change(target, environment, holding, "rollback", actor, reason, ())

    # -- new versions ----------------------------------------------------------------------------

    @_judged
    def auto_enter(
        self, version: ModelVersion, actor: str | None = None
    ) -> EnvironmentEvent | None:
        """Put a newly logged version in the first environment, if the policy says so, as
        ``actor`` (the one who logged it; default: the client's user)."""
        if not self.policy.auto_enter_first:
            return None
        first = self.policy.chain[0]
        if self._unsafe_in(version, first) is not None:
            return None  # a pickle the first environment refuses stays out; it is registered
        for _ in range(5):
            holding = self.repo.holding(version.model, first)
            if holding is not None and holding.version >= version.version:
                return None  # a newer version got there first
            try:
                return self._change(
                    version,
                    first,
                    holding,
                    "auto",
                    actor or self.client.user,
                    "new version logged",
                    (),
                )
            except ConflictError:
                continue
        return None

    # -- helpers ---------------------------------------------------------------------------------

    def _version(self, reference: str) -> ModelVersion:
        ref = Ref.parse(reference)
        if ref.environment is not None:
            return self.resolve(ref.name, ref.environment)
        return self.client.models.get_version(ref.name, ref.version)

    def _check_chain(self, version: ModelVersion, to: str) -> None:
        env = self.policy.environment(to)
        previous = self.policy.previous(to)
        if previous is None or not env.gates.require_previous:
            return
        if self._entered_at(version, previous) is None:
            raise PromotionError(
                f"{version.model} version {version.version} has never been in {previous}; "
                f"promote it to {previous} before {to}"
            )

    def _entered_at(self, version: ModelVersion, environment: str) -> float | None:
        return self._stays(version, environment, time.time())[0]

    def _stays(
        self, version: ModelVersion, environment: str, now: float
    ) -> tuple[float | None, float]:
        """When ``environment`` first held ``version``, and the total time over every stay."""
        first: float | None = None
        total, since = 0.0, None
        for event in self.repo.events(version.model, environment):
            if event.action not in HOLDER_ACTIONS:
                continue
            if since is not None:
                total += event.created_at - since
                since = None
            if event.to_version == version.version:
                since = event.created_at
                first = event.created_at if first is None else first
        return first, total + (now - since if since is not None else 0.0)

    def _evaluate(
        self, version: ModelVersion, to: str, holding: Holding | None
    ) -> tuple[GateResult, ...]:
        env = self.policy.environment(to)
        previous = self.policy.previous(to)
        incumbent = (
            self.client.models.get_version(version.model, holding.version) if holding else None
        )
        now = time.time()
        entered, held = self._stays(version, previous, now) if previous else (None, 0.0)
        context = GateContext(
            candidate=version,
            candidate_run=self._run(version),
            incumbent=incumbent,
            incumbent_run=self._run(incumbent) if incumbent else None,
            previous_environment=previous,
            entered_previous_at=entered,
            seconds_in_previous=held,
            primary_metric=self.policy.primary_metric,
            artifacts=self.client.artifacts,
            now=now,
            environment=to,
            live=(
                self._live_evidence(env.gates, version, incumbent, previous, to)
                if needs_live_evidence(env.gates)
                else None
            ),
        )
        return evaluate(env.gates, context)

    def _live_evidence(
        self,
        gates: GatePolicy,
        version: ModelVersion,
        incumbent: ModelVersion | None,
        previous: str | None,
        to: str,
    ) -> LiveEvidence:
        """What the prediction logs in this machine's monitoring folder show of the
        candidate's traffic (and the incumbent's, for ``live_beats_incumbent``)."""
        from modelrail.monitoring.evidence import Subject, gather
        from modelrail.store.profiles_repo import ReferenceProfileRepository

        profiles = ReferenceProfileRepository(self.client.db)
        drift = math.isfinite(gates.max_live_drift)
        # The profile is what drift is measured against, and tells a classifier from a
        # regressor for the live metric; a request count needs none.
        wanted = drift or gates.live_beats_incumbent

        def subject(held: ModelVersion) -> Subject:
            profile = profiles.get(held.model, held.version) if wanted else None
            return Subject(held, profile)

        return gather(
            self.client.settings.monitoring_folder,
            candidate=subject(version),
            incumbent=subject(incumbent) if incumbent is not None else None,
            previous=previous,
            target=to,
            metric=self.policy.primary_metric,
            drift=drift,
            live_metric=gates.live_beats_incumbent,
        )

    def _run(self, version: ModelVersion) -> Run | None:
        return self.client.get_run(version.run_id) if version.run_id else None

    def _no_pending_request(self, version: ModelVersion, to: str) -> None:
        # Checked early to spare the gates; the database enforces it when a request is written.
        waiting = self.repo.pending_request(version.model, to, version.version)
        if waiting is not None:
            raise request_waiting(waiting.id, version.model, version.version, to)

    def _unsafe_in(self, version: ModelVersion, environment: str) -> GateResult | None:
        """The failed safe-format gate when ``environment`` refuses ``version``'s pickle."""
        if self.policy.environment(environment).gates.allow_pickle:
            return None
        result = safe_format(version, environment)
        return None if result.passed else result

    def _refuse_unsafe(
        self, version: ModelVersion, environment: str, how: str, *, params: tuple[str, ...] = ()
    ) -> None:
        """The pickle policy is a security rule, like the sha256 check: what skips the gates
        (``force``, a rollback) does not skip it. ``how`` may name ``params`` as ``{name}``."""
        failed = self._unsafe_in(version, environment)
        if failed is not None:
            raise GateFailedError(
                f"{version.model} version {version.version} is saved with pickle and "
                f"{environment} has allow_pickle = false, which {how} does not override; "
                "nothing was changed",
                (failed,),
                params=params,
            )

    def _verify_unless_smoke_tested(self, version: ModelVersion, to: str) -> None:
        """Every change of holder checks the sha256 of what will be loaded: the smoke gate
        does so when it runs, this otherwise."""
        if not self.policy.environment(to).gates.smoke_test:
            verify_artifacts(self.client.artifacts, version)

    def _pending(self, request_id: int, actor: str, *, deciding: str) -> ApprovalRequest:
        request = self.repo.get_request(request_id)
        # A decided or expired request conflicts with the request's state (409), unlike a
        # decision the rules refuse, such as approving your own (403).
        if request.status in ("approved", "rejected"):
            raise ConflictError(
                f"request {request_id} was already {request.status} by {request.decided_by}"
            )
        if request.status == "expired":
            expired = time.strftime("%Y-%m-%d %H:%M", time.localtime(request.expires_at))
            raise ConflictError(
                f"request {request_id} expired at {expired}; promote again to open a new one"
            )
        if deciding == "approve" and actor == request.requested_by:
            raise ApprovalError(
                f"request {request_id} was made by {actor}: it needs approval by someone else"
            )
        return request

    def _change(
        self,
        version: ModelVersion,
        environment: str,
        holding: Holding | None,
        action: str,
        actor: str,
        reason: str,
        gates: tuple[GateResult, ...],
        *,
        forced: bool = False,
    ) -> EnvironmentEvent:
        event = self.repo.change_holder(
            model=version.model,
            environment=environment,
            expected=holding,
            version=version.version,
            action=action,
            actor=actor,
            reason=reason,
            gates=gates,
            forced=forced,
            policy_version=self._policy_version,
        )
        self._notify(event, version)
        return event

    def _notify(self, event: EnvironmentEvent, version: ModelVersion) -> None:
        notify_change(self.policy, self.client.settings.project_dir, event, version)

    def _outcome(
        self,
        version: ModelVersion,
        to: str,
        holding: Holding | None,
        results: tuple[GateResult, ...],
        event: EnvironmentEvent | None,
        request: ApprovalRequest | None,
    ) -> PromotionOutcome:
        return PromotionOutcome(
            model=version.model,
            environment=to,
            version=version.version,
            previous_version=holding.version if holding else None,
            gates=results,
            event=event,
            request=request,
        )


def _raise_on_failure(version: ModelVersion, to: str, results: tuple[GateResult, ...]) -> None:
    failed = [r for r in results if not r.passed]
    if failed:
        names = ", ".join(r.gate for r in failed)
        raise GateFailedError(
            f"{version.model} version {version.version} did not pass the gates of {to} "
            f"({names}); nothing was changed",
            results,
        )


def holder_stack(events: list[EnvironmentEvent]) -> list[int]:
    """Replay the history: promotions push, a rollback returns to an earlier entry."""
    stack: list[int] = []
    for event in events:
        if event.action not in HOLDER_ACTIONS or event.to_version is None:
            continue
        if event.action == "rollback" and event.to_version in stack:
            del stack[len(stack) - stack[::-1].index(event.to_version) :]
        else:
            stack.append(event.to_version)
    return stack

"""Models and environments: the board (``/models``), one model's page with its versions
and promotion timeline (``/models/{name}``), one version's page with its reference profile
(``/models/{name}/versions/{version}``), and the promote, approve, reject and rollback
actions.

Every action shows what it would do first (a GET that changes nothing: the gate results
from ``Client.check_promotion``, or the versions a rollback can return to) and then
changes things only when its confirm form is POSTed. An action is offered only when the
viewer's roles allow it in that environment, and every change checks that again
(``Viewer.require``: 403 naming the missing permission) before it calls the same
``Client`` method as the command line (``promote``, ``approve``, ``reject``, ``rollback``)
with the viewer as the actor (see ``access``); errors become pages in ``app``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from starlette.responses import RedirectResponse, Response

from modelrail.entities import EnvironmentEvent, GateResult, Holding
from modelrail.environments import holder_stack
from modelrail.errors import InvalidInputError
from modelrail.gates import load_risk
from modelrail.scoring.forms.record import forms_record, summary_lines
from modelrail.store.environments_repo import HOLDER_ACTIONS
from modelrail.ui.state import Page


@dataclass(frozen=True)
class Notice:
    """What the action just done changed, shown at the top of the model page."""

    text: str
    event: EnvironmentEvent | None = None


def models(page: Page) -> Response:
    client = page.client
    environments = client.environments()
    return page.render(
        "models.html",
        title="Models",
        models=client.list_models(),
        environments=environments,
        pending=client.approval_requests("pending"),
    )


def model_page(page: Page) -> Response:
    name = page.path_param("name")
    client = page.client
    versions = client.list_versions(name)  # an unknown model is a 404 here
    environments = client.environments()
    history = client.history(name)
    pending = [r for r in client.approval_requests("pending") if r.model == name]
    held = {view.name: view.holdings.get(name) for view in environments}
    targets = [view.name for view in environments if page.viewer.may("request", view.name)]
    chain = client.policy.chain
    suggestions = _suggestions(chain, held)
    return page.render(
        "model.html",
        title=f"Model {name}",
        name=name,
        versions=list(reversed(versions)),
        # What loading each version runs besides its library: "pickle", "shipped code" or None.
        risks={v.version: load_risk(v) for v in versions},
        # Which predictor serves one row and batches, and what else was tried (issue 16).
        predictors={v.version: summary_lines(forms_record(v), v.flavor) for v in versions},
        environments=environments,
        held=held,
        targets=targets,
        # The chain's second environment (the usual next step) when it is offered.
        chosen_target=next((t for t in targets if t in chain[1:2]), None),
        suggestions={env: v for env, v in suggestions.items() if env in targets},
        history=list(reversed(history)),
        pending=pending,
        notice=_notice(page, history),
    )


def version_page(page: Page) -> Response:
    """One version: where it came from, and its reference profile (per column of its train
    and test data: count, missing rate and a summary; the distribution of its predictions)."""
    name = page.path_param("name")
    number = _whole("version", page.path_param("version"))
    client = page.client
    version = client.get_model_version(f"{name}:{number}")  # unknown: a 404 page
    profile = client.reference_profile(version.reference)
    datasets = []
    if profile is not None:
        datasets = [
            ("train", profile.train_label, profile.train),
            ("test", profile.test_label, profile.test),
        ]
    return page.render(
        "version.html",
        title=f"{name} version {number}",
        version=version,
        profile=profile,
        datasets=datasets,
    )


def promote_check(page: Page) -> Response:
    name = page.path_param("name")
    version = _whole("version", page.param("version"))
    to = _required("to", page.param("to"))
    client = page.client
    env = client.policy.environment(to)
    candidate = client.get_model_version(f"{name}:{version}")
    results = client.check_promotion(candidate.reference, to)
    holding = _holding(page, name, to)
    failed = any(not result.passed for result in results)
    return page.render(
        "check.html",
        title=f"Promote {candidate.reference} to {to}",
        action="promote",
        name=name,
        version=version,
        environment=to,
        holding=holding,
        gates=results,
        approval=env.gates.approval,
        form_action=f"/models/{name}/promote",
        hidden={"version": str(version), "to": to},
        blocked=_promote_blocker(holding, version, to, name) or page.viewer.refusal("request", to),
        # Past failed gates, only by force: offered to those who may (a reason is needed).
        force=failed and page.viewer.may("force", to),
        choices=[],
    )


def promote(page: Page) -> Response:
    name = page.path_param("name")
    version = _whole("version", page.field("version"))
    to = _required("to", page.field("to"))
    force = page.field("force") == "1"
    page.viewer.require("force" if force else "request", to)
    outcome = page.client.promote(
        f"{name}:{version}", to, reason=page.field("reason"), force=force, actor=page.actor
    )
    if outcome.event is not None:
        return _back(name, f"event-{outcome.event.id}")
    assert outcome.request is not None
    return _back(name, f"request-{outcome.request.id}")


def approve_check(page: Page) -> Response:
    client = page.client
    request = client.approval_request(int(page.path_param("request_id")))
    results: tuple[GateResult, ...] = ()
    blocked = None
    if request.status != "pending":
        blocked = f"request {request.id} is {request.status}: there is nothing to decide"
    elif (refusal := page.viewer.refusal("approve", request.environment)) is not None:
        blocked = refusal
    else:
        results = client.check_promotion(f"{request.model}:{request.version}", request.environment)
        if request.requested_by == page.actor:
            blocked = f"you ({page.actor}) made request {request.id}: " + (
                "someone else must approve it; you may reject it"
                if page.viewer.team
                else "someone else must approve it (on a store without users, on the command "
                f"line: MODELRAIL_USER=NAME modelrail approve {request.id}); you may reject it"
            )
    return page.render(
        "check.html",
        title=f"Approve request {request.id}",
        action="approve",
        name=request.model,
        version=request.version,
        environment=request.environment,
        holding=_holding(page, request.model, request.environment),
        gates=results,
        approval=False,
        approval_request=request,
        form_action=f"/requests/{request.id}/approve",
        hidden={},
        blocked=blocked,
        choices=[],
    )


def approve(page: Page) -> Response:
    request_id = _deciding(page)
    outcome = page.client.approve(request_id, reason=page.field("reason"), actor=page.actor)
    assert outcome.event is not None
    return _back(outcome.model, f"event-{outcome.event.id}")


def reject(page: Page) -> Response:
    request_id = _deciding(page)
    request = page.client.reject(request_id, reason=page.field("reason"), actor=page.actor)
    return _back(request.model, f"request-{request.id}")


def _deciding(page: Page) -> int:
    """The request to approve or reject, once the viewer may decide in its environment."""
    request = page.client.approval_request(int(page.path_param("request_id")))
    page.viewer.require("approve", request.environment)
    return request.id


def rollback_check(page: Page) -> Response:
    name = page.path_param("name")
    environment = _required("env", page.param("env"))
    client = page.client
    client.policy.environment(environment)
    holding = _holding(page, name, environment)
    events = client.history(name, environment)
    earlier = []
    for event in events:
        target = event.to_version
        if event.action in HOLDER_ACTIONS and target is not None and target not in earlier:
            earlier.append(target)
    choices = [v for v in reversed(earlier) if holding is None or v != holding.version]
    # What a rollback without a version returns to (as the service decides): none when the
    # history has no earlier entry, e.g. right after rolling back to the first version.
    stack = holder_stack(events)
    default_target = stack[-2] if len(stack) >= 2 else None
    blocked = page.viewer.refusal("rollback", environment)
    if blocked is None and holding is None:
        blocked = f"{environment} holds no version of {name}: there is nothing to roll back"
    elif blocked is None and not choices:
        blocked = f"{environment} never held another version of {name}"
    return page.render(
        "check.html",
        title=f"Roll back {name}@{environment}",
        action="rollback",
        name=name,
        version=None,
        environment=environment,
        holding=holding,
        gates=(),
        approval=False,
        form_action=f"/models/{name}/rollback",
        hidden={"env": environment},
        blocked=blocked,
        choices=choices,
        default_target=default_target,
    )


def rollback(page: Page) -> Response:
    name = page.path_param("name")
    environment = _required("env", page.field("env"))
    page.viewer.require("rollback", environment)
    text = page.field("to_version")
    to_version = _whole("to_version", text) if text else None
    event = page.client.rollback(
        name, environment, to_version=to_version, reason=page.field("reason"), actor=page.actor
    )
    return _back(name, f"event-{event.id}")


# -- helpers --------------------------------------------------------------------------------


def _back(name: str, done: str) -> Response:
    """After a change, the model page (a reload there does not post the form again)."""
    return RedirectResponse(f"/models/{name}?done={done}", status_code=303)


def _whole(field: str, text: str | None) -> int:
    if text is None or not text.strip():
        raise InvalidInputError(f"{field} is missing")
    if not text.strip().isdigit():
        raise InvalidInputError(f"{field} must be a version number, not {text!r}")
    return int(text)


def _required(field: str, text: str | None) -> str:
    if text is None or not text.strip():
        raise InvalidInputError(f"{field} is missing")
    return text.strip()


def _holding(page: Page, model: str, environment: str) -> Holding | None:
    return next(
        (h for h in page.client.board() if h.model == model and h.environment == environment),
        None,
    )


def _promote_blocker(holding: Holding | None, version: int, to: str, name: str) -> str | None:
    if holding is not None and holding.version == version:
        return f"{to} already holds {name} version {version}"
    return None


def _suggestions(chain: tuple[str, ...], held: dict[str, Holding | None]) -> dict[str, int]:
    """For each environment, the version the one before it holds, when that would be new."""
    suggested = {}
    for before, after in itertools.pairwise(chain):
        source, target = held.get(before), held.get(after)
        if source is not None and (target is None or target.version != source.version):
            suggested[after] = source.version
    return suggested


def _notice(page: Page, history: list[EnvironmentEvent]) -> Notice | None:
    done = page.param("done") or ""
    kind, _, number = done.partition("-")
    if not number.isdigit():
        return None
    if kind == "event":
        event = next((e for e in history if e.id == int(number)), None)
        if event is None:
            return None
        what = {
            "promote": "promoted",
            "approve": "approved and moved",
            "rollback": "rolled back to",
            "auto": "put",
        }.get(event.action, event.action)
        was = "empty" if event.from_version is None else f"version {event.from_version}"
        text = (
            f"{event.actor} {what} {event.model} version {event.to_version} "
            f"in {event.environment} (was {was})"
        )
        return Notice(text, event)
    if kind == "request":
        request = page.client.approval_request(int(number))
        if request.status == "pending":
            text = (
                f"request {request.id}: {request.model} version {request.version} to "
                f"{request.environment} is waiting for approval by someone other than "
                f"{request.requested_by}"
            )
        else:
            text = f"request {request.id} was {request.status} by {request.decided_by or '-'}"
        return Notice(text)
    return None

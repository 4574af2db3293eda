"""The team server's tracking and registration writes: experiments, runs with their params,
metrics, tags, artifacts and components, and new model versions.

Each takes the server's ``Client``, the signed-in user (``app`` has checked ``log``) and the
parsed body, and is safe to receive twice (see ``remote.repositories``): a client that lost an
answer sends the request again. A run belongs to the user who created it: only they (or an
admin) write into it, and its ``user`` is the signed-in user, whatever the body says. A run's
writes also get ``retry``: whether the client marked the request as a second try (only the
metrics, whose points have no key of their own, need to know).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelrail.client import Client
from modelrail.entities import (
    RUN_STATUSES,
    ArtifactRecord,
    ComponentSpec,
    MetricPoint,
    ModelVersion,
    RunOwner,
    Signature,
    User,
)
from modelrail.errors import (
    ConflictError,
    InvalidRequestError,
    PermissionDeniedError,
    RunNotFoundError,
    RunStateError,
)
from modelrail.remote.decode import decode_body
from modelrail.server import payload

RUN_FIELDS = (
    "id",
    "experiment_id",
    "name",
    "architecture",
    "started_at",
    "provenance",
    "tags",
    "components",
)
VERSION_FIELDS = (
    "key",
    "run_id",
    "flavor",
    "artifact_sha256",
    "artifact_size",
    "signature",
    "input_example",
    "flavor_details",
    "description",
    "forms",
)
END_FIELDS = ("status", "ended_at", "error", "components")


def experiment(client: Client, user: User, body: Mapping[str, Any]) -> Any:
    return client.runs.get_or_create_experiment(payload.text(body, "name", required=True))


def create_run(client: Client, user: User, body: Mapping[str, Any]) -> Any:
    run_id = run_id_of(payload.text(body, "id", required=True))
    experiment_id = payload.integer(body, "experiment_id")
    if experiment_id is None:
        raise InvalidRequestError("'experiment_id' is required", field="experiment_id")
    components = decode_body(list[ComponentSpec], body.get("components", []), "components")
    tags = decode_body(dict[str, str], body.get("tags") or {}, "tags")
    existing = _existing_run(client, run_id)
    if existing is not None:  # a retry, or a clash of ids (never from a real client)
        if existing.user != user.name:
            raise ConflictError(f"run {run_id[:8]} exists already", params=())
        held = client.get_run(existing.id).components
        return {spec.role: held[spec.role] for spec in components if spec.role in held}
    return client.runs.create_run(
        run_id=run_id,
        experiment_id=experiment_id,
        name=payload.text(body, "name", required=True),
        architecture=payload.text(body, "architecture") or None,
        user=user.name,
        started_at=_number(body, "started_at"),
        provenance_json=payload.text(body, "provenance") or "{}",
        tags=tags,
        components=components,
    )


def log_params(client: Client, run: RunOwner, body: Mapping[str, Any], retry: bool) -> None:
    params = body.get("params")
    if not isinstance(params, dict):
        raise InvalidRequestError("'params' must be an object", field="params")
    client.runs.log_params(run.id, params)


def log_metrics(client: Client, run: RunOwner, body: Mapping[str, Any], retry: bool) -> None:
    points = decode_body(list[MetricPoint], body.get("points"), "points")
    if retry:  # the first try may have been written: keep only the points not held yet
        held = {
            (p.key, p.step, p.timestamp)
            for key in {p.key for p in points}
            for p in client.metric_history(run.id, key)
        }
        points = [p for p in points if (p.key, p.step, p.timestamp) not in held]
    if points:
        client.runs.log_metrics(run.id, points)


def set_tags(client: Client, run: RunOwner, body: Mapping[str, Any], retry: bool) -> None:
    client.runs.set_tags(run.id, decode_body(dict[str, str], body.get("tags"), "tags"))


def add_artifacts(client: Client, run: RunOwner, body: Mapping[str, Any], retry: bool) -> None:
    records = decode_body(list[ArtifactRecord], body.get("artifacts"), "artifacts")
    for record in records:
        client.require_artifact(record.sha256, record.size, record.path)
    client.runs.add_artifacts(run.id, records)


def attach_component(client: Client, run: RunOwner, body: Mapping[str, Any], retry: bool) -> Any:
    return client.runs.attach_component(
        run.id, decode_body(ComponentSpec, body.get("component"), "component")
    )


def end_run(client: Client, run: RunOwner, body: Mapping[str, Any], retry: bool) -> None:
    status = payload.text(body, "status", required=True)
    if status not in RUN_STATUSES or status == "running":
        raise InvalidRequestError("'status' must be 'finished' or 'failed'", field="status")
    if run.status != "running":
        if run.status == status:
            return  # a retry of the request that ended it
        raise RunStateError(f"run {run.short_id} is {run.status}; it cannot become {status}")
    client.runs.end_run(
        run.id,
        status=status,
        ended_at=_number(body, "ended_at"),
        error=payload.text(body, "error") or None,
        components=decode_body(list[ComponentSpec], body.get("components", []), "components"),
    )


def add_version(client: Client, user: User, name: str, body: Mapping[str, Any]) -> ModelVersion:
    key = payload.text(body, "key", required=True)
    if not (8 <= len(key) <= 64 and key.isascii() and key.isalnum()):
        raise InvalidRequestError("'key' must be 8-64 letters and digits", field="key")
    signature = body.get("signature")
    if not isinstance(signature, dict):
        raise InvalidRequestError("'signature' must be an object", field="signature")
    try:
        parsed_signature = Signature.from_json(signature)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"'signature' is malformed: {exc}", field="signature") from None
    run_id = payload.text(body, "run_id") or None
    if run_id is not None:
        owned_run(client, user, run_id)
    size = payload.integer(body, "artifact_size")
    forms, details = body.get("forms"), body.get("flavor_details")
    if forms is not None and not isinstance(forms, dict):
        raise InvalidRequestError("'forms' must be an object or null", field="forms")
    if not isinstance(details, dict):
        raise InvalidRequestError("'flavor_details' must be an object", field="flavor_details")
    return client.add_version(
        name,
        run_id=run_id,
        flavor=payload.text(body, "flavor", required=True),
        artifact_sha256=payload.sha256_text(
            "artifact_sha256", payload.text(body, "artifact_sha256", required=True)
        ),
        artifact_size=0 if size is None else size,
        signature=parsed_signature,
        input_example=body.get("input_example"),
        flavor_details=details,
        description=payload.text(body, "description"),
        forms=forms,
        key=key,
        actor=user.name,
    )


def owned_run(client: Client, user: User, raw_id: str) -> RunOwner:
    """The run ``raw_id`` names, when ``user`` may write into it."""
    run = client.runs.run_owner(run_id_of(raw_id))
    if run.user != user.name and not any(grant.role == "admin" for grant in user.roles):
        raise PermissionDeniedError(
            f"run {run.short_id} is {run.user}'s: only they (or an admin) write into it",
            user=user.name,
            action="log",
        )
    return run


def _existing_run(client: Client, run_id: str) -> RunOwner | None:
    """The run ``get_run(run_id)`` would find, if any: for a full id (what clients send), by
    one prebuilt read of the id as given and, if it has capitals, of it in lower case."""
    if len(run_id) != 32:
        try:
            return client.runs.run_owner(run_id)
        except RunNotFoundError:
            return None
    found = client.runs.find_owner(run_id)
    if found is None and run_id != run_id.lower():
        found = client.runs.find_owner(run_id.lower())
    return found


def run_id_of(raw: str) -> str:
    if not (raw.isascii() and raw.isalnum() and 4 <= len(raw) <= 32):
        raise InvalidRequestError("a run id is 4-32 letters and digits", field="run")
    return raw


def _number(body: Mapping[str, Any], name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidRequestError(f"{name!r} must be a number", field=name)
    return float(value)

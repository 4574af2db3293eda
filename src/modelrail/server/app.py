"""The team server's routes: ``/api/v1`` over one ``Client``.

Every ``/api`` route signs its request in first (``auth.sign_in``), then checks the signed-in
user's permission with ``modelrail.permissions.require`` (reading needs ``read``;
promoting needs ``request`` in the target environment, or ``force`` there with a reason;
approving and rejecting need ``approve`` in the request's environment; rolling back needs
``rollback`` there; the policy in force may say which roles may do each), and only then
calls the ``Client`` method with ``actor`` set to the signed-in user, so every history row
names who really acted. ``MODELRAIL_USER`` plays no part here. Library calls block, so they
run in Starlette's worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from modelrail.client import Client
from modelrail.entities import RunOwner, User
from modelrail.errors import InvalidRequestError
from modelrail.permissions import require
from modelrail.remote.connection import RETRY_HEADER
from modelrail.server import payload, reads, writes
from modelrail.server.api_errors import EXCEPTION_HANDLERS
from modelrail.server.artifact_routes import DEFAULT_MAX_UPLOAD_BYTES, artifact_routes
from modelrail.server.auth import FailureThrottle, sign_in
from modelrail.server.batch_routes import batch_routes
from modelrail.server.card_routes import card_routes
from modelrail.server.changes import HistoryChanges
from modelrail.server.exchange_routes import exchange_routes
from modelrail.server.identity_routes import identity_routes
from modelrail.server.payload import answer
from modelrail.server.policy_routes import policy_routes
from modelrail.server.profile_routes import profile_routes
from modelrail.server.schedule_routes import schedule_routes
from modelrail.server.shadow_routes import shadow_routes

T = TypeVar("T")
RunWrite = Callable[[Client, RunOwner, dict[str, Any], bool], Any]

REQUEST_STATUSES = ("pending", "approved", "rejected", "expired", "all")


def build_app(
    client: Client,
    *,
    throttle: FailureThrottle | None = None,
    max_upload_bytes: int | None = None,
) -> Starlette:
    """The ASGI app serving ``client``'s store. The caller owns ``client`` and closes it.

    ``max_upload_bytes`` is the largest artifact a ``PUT /api/v1/artifacts/...`` takes
    (a larger one is refused with 413); None: ``DEFAULT_MAX_UPLOAD_BYTES``, 4 GiB.
    """
    failures = throttle if throttle is not None else FailureThrottle()
    changes = HistoryChanges(client.latest_event_id)

    async def signed_in(request: Request) -> User:
        return await run_in_threadpool(sign_in, client, failures, request)

    async def call(function: Callable[[], T]) -> T:
        return await run_in_threadpool(function)

    async def changing(function: Callable[[], T]) -> T:
        """A change of what environments hold: waiting clients hear of it at once."""
        try:
            return await call(function)
        finally:
            changes.poke()

    async def permitted(user: User, action: str, environment: str) -> None:
        """``require`` an environment action under the policy in force (which reads the
        store, so in a worker thread)."""
        permissions = await call(lambda: client.policy.permissions)
        require(user, action, environment, permissions=permissions)

    async def reading(request: Request, read: Callable[[], Any]) -> Response:
        user = await signed_in(request)
        require(user, "read")
        return answer(await call(read))

    # -- reading ---------------------------------------------------------------------------

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def whoami(request: Request) -> Response:
        user = await signed_in(request)
        return answer(
            {
                "name": user.name,
                "roles": [
                    {"role": grant.role, "environment": grant.environment} for grant in user.roles
                ],
            }
        )

    async def models(request: Request) -> Response:
        return await reading(request, client.list_models)

    async def versions(request: Request) -> Response:
        return await reading(
            request,
            lambda: client.list_versions(payload.checked_text("name", request.path_params["name"])),
        )

    async def board(request: Request) -> Response:
        return await reading(request, client.board)

    async def history(request: Request) -> Response:
        return await reading(
            request,
            lambda: client.history(
                payload.query_text(request, "model"), payload.query_text(request, "environment")
            ),
        )

    async def history_changes(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        after = _whole(payload.query_text(request, "after") or "0", "after")
        wait = _whole(payload.query_text(request, "wait") or "25", "wait")
        return answer({"newest": await changes.wait_beyond(after, float(wait))})

    async def requests(request: Request) -> Response:
        def read() -> Any:
            status = payload.query_text(request, "status") or "pending"
            if status not in REQUEST_STATUSES:
                raise InvalidRequestError(
                    f"'status' must be one of {', '.join(REQUEST_STATUSES)}, not {status!r}",
                    field="status",
                )
            return client.approval_requests(None if status == "all" else status)

        return await reading(request, read)

    async def one_request(request: Request) -> Response:
        return await reading(
            request,
            lambda: client.approval_request(payload.path_id("id", request.path_params["id"])),
        )

    def read_route(read: Callable[[Client, Request], Any]) -> Callable[[Request], Any]:
        async def route(request: Request) -> Response:
            return await reading(request, lambda: read(client, request))

        return route

    async def tracker(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        query = await reads.tracker_query(request)
        return answer(await call(lambda: client.tracker(query)))

    async def extremes(request: Request) -> Response:
        user = await signed_in(request)
        require(user, "read")
        query, keys = await reads.extremes_request(request)
        return answer(await call(lambda: client.metric_extremes(query, keys)))

    async def check(request: Request) -> Response:
        user = await signed_in(request)
        body = await payload.read_object(request, ("reference", "to"))
        reference = payload.text(body, "reference", required=True)
        to = payload.text(body, "to", required=True)
        await permitted(user, "request", to)
        return answer(await call(lambda: client.check_promotion(reference, to)))

    # -- tracking and registering -------------------------------------------------------------

    async def logging(request: Request, fields: tuple[str, ...]) -> tuple[User, dict[str, Any]]:
        user = await signed_in(request)
        require(user, "log")
        return user, await payload.read_object(request, fields)

    async def new_experiment(request: Request) -> Response:
        user, body = await logging(request, ("name",))
        return answer(await call(lambda: writes.experiment(client, user, body)))

    async def new_run(request: Request) -> Response:
        user, body = await logging(request, writes.RUN_FIELDS)
        return answer(await call(lambda: writes.create_run(client, user, body)))

    def run_write(fields: tuple[str, ...], write: RunWrite) -> Callable[[Request], Any]:
        async def route(request: Request) -> Response:
            user, body = await logging(request, fields)
            # A retry's first try may have been written: the metrics route checks.
            retry = RETRY_HEADER in request.headers

            def act() -> Any:
                run = writes.owned_run(client, user, request.path_params["run"])
                return write(client, run, body, retry)

            return answer(await call(act))

        return route

    async def new_version(request: Request) -> Response:
        user, body = await logging(request, writes.VERSION_FIELDS)
        name = payload.checked_text("name", request.path_params["name"])
        return answer(await changing(lambda: writes.add_version(client, user, name, body)))

    # -- changing --------------------------------------------------------------------------

    async def promote(request: Request) -> Response:
        user = await signed_in(request)
        body = await payload.read_object(
            request, ("reference", "to", "reason", "force", "if_holds")
        )
        reference = payload.text(body, "reference", required=True)
        to = payload.text(body, "to", required=True)
        reason = payload.text(body, "reason")
        force = payload.flag(body, "force")
        if_holds = payload.integer(body, "if_holds")
        if force:
            await permitted(user, "force", to)
            if not reason.strip():
                raise InvalidRequestError(
                    "a forced promotion skips the gates, so it needs a reason saying why",
                    field="reason",
                )
        else:
            await permitted(user, "request", to)
        return answer(
            await changing(
                lambda: client.promote(
                    reference, to, reason=reason, force=force, if_holds=if_holds, actor=user.name
                )
            )
        )

    async def decide(request: Request, approve: bool) -> Response:
        user = await signed_in(request)
        request_id = payload.path_id("id", request.path_params["id"])
        body = await payload.read_object(request, ("reason",))
        reason = payload.text(body, "reason")
        waiting = await call(lambda: client.approval_request(request_id))
        await permitted(user, "approve", waiting.environment)
        if approve:
            return answer(
                await changing(lambda: client.approve(request_id, reason=reason, actor=user.name))
            )
        return answer(
            await changing(lambda: client.reject(request_id, reason=reason, actor=user.name))
        )

    async def approve(request: Request) -> Response:
        return await decide(request, approve=True)

    async def reject(request: Request) -> Response:
        return await decide(request, approve=False)

    async def rollback(request: Request) -> Response:
        user = await signed_in(request)
        body = await payload.read_object(request, ("model", "environment", "to_version", "reason"))
        model = payload.text(body, "model", required=True)
        environment = payload.text(body, "environment", required=True)
        to_version = payload.integer(body, "to_version")
        reason = payload.text(body, "reason")
        await permitted(user, "rollback", environment)
        return answer(
            await changing(
                lambda: client.rollback(
                    model, environment, to_version=to_version, reason=reason, actor=user.name
                )
            )
        )

    api = "/api/v1"
    routes = [
        Route("/health", health, methods=["GET"]),
        Route(f"{api}/whoami", whoami, methods=["GET"]),
        Route(f"{api}/models", models, methods=["GET"]),
        Route(f"{api}/models/{{name}}/versions", versions, methods=["GET"]),
        Route(f"{api}/board", board, methods=["GET"]),
        Route(f"{api}/history", history, methods=["GET"]),
        Route(f"{api}/history/changes", history_changes, methods=["GET"]),
        Route(f"{api}/requests", requests, methods=["GET"]),
        Route(f"{api}/requests/{{id}}", one_request, methods=["GET"]),
        Route(f"{api}/requests/{{id}}/approve", approve, methods=["POST"]),
        Route(f"{api}/requests/{{id}}/reject", reject, methods=["POST"]),
        Route(f"{api}/versions/{{reference}}", read_route(reads.model_version), methods=["GET"]),
        Route(f"{api}/environments", read_route(reads.environments), methods=["GET"]),
        Route(f"{api}/tracker", tracker, methods=["POST"]),
        Route(f"{api}/experiments", read_route(reads.experiments), methods=["GET"]),
        Route(f"{api}/datasets", read_route(reads.datasets), methods=["GET"]),
        Route(f"{api}/metric-names", read_route(reads.metric_names), methods=["GET"]),
        Route(f"{api}/metric-extremes", extremes, methods=["POST"]),
        Route(f"{api}/runs/{{run}}", read_route(reads.run), methods=["GET"]),
        Route(f"{api}/runs/{{run}}/metrics", read_route(reads.metric_history), methods=["GET"]),
        Route(f"{api}/checks", check, methods=["POST"]),
        Route(f"{api}/experiments", new_experiment, methods=["POST"]),
        Route(f"{api}/runs", new_run, methods=["POST"]),
        Route(
            f"{api}/runs/{{run}}/params",
            run_write(("params",), writes.log_params),
            methods=["POST"],
        ),
        Route(
            f"{api}/runs/{{run}}/metrics",
            run_write(("points",), writes.log_metrics),
            methods=["POST"],
        ),
        Route(f"{api}/runs/{{run}}/tags", run_write(("tags",), writes.set_tags), methods=["POST"]),
        Route(
            f"{api}/runs/{{run}}/artifacts",
            run_write(("artifacts",), writes.add_artifacts),
            methods=["POST"],
        ),
        Route(
            f"{api}/runs/{{run}}/components",
            run_write(("component",), writes.attach_component),
            methods=["POST"],
        ),
        Route(
            f"{api}/runs/{{run}}/end",
            run_write(writes.END_FIELDS, writes.end_run),
            methods=["POST"],
        ),
        Route(f"{api}/models/{{name}}/versions", new_version, methods=["POST"]),
        Route(f"{api}/promotions", promote, methods=["POST"]),
        Route(f"{api}/rollbacks", rollback, methods=["POST"]),
    ]
    if max_upload_bytes is None:
        max_upload_bytes = DEFAULT_MAX_UPLOAD_BYTES
    routes.extend(artifact_routes(client, signed_in, api, max_upload_bytes=max_upload_bytes))
    routes.extend(policy_routes(client, signed_in, api))
    routes.extend(identity_routes(client, signed_in, api))
    routes.extend(batch_routes(client, signed_in, api))
    routes.extend(shadow_routes(client, signed_in, api))
    routes.extend(schedule_routes(client, signed_in, api))
    routes.extend(card_routes(client, signed_in, api))
    routes.extend(profile_routes(client, signed_in, api))
    routes.extend(exchange_routes(client, signed_in, api, changes.poke))
    return Starlette(routes=routes, exception_handlers=dict(EXCEPTION_HANDLERS))


def _whole(raw: str, name: str) -> int:
    if not raw.isascii() or not raw.isdigit() or int(raw) > payload.MAX_ID:
        raise InvalidRequestError(f"{name!r} must be a whole number", field=name)
    return int(raw)

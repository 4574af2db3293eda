"""The team server's identity routes: users, their roles and their API tokens.

Managing users and roles and making tokens needs ``admin``; every change names the
signed-in admin as the one who made it. A user may also list and revoke their own tokens
(so a leaked token can be stopped by its owner at once). A token's secret appears only in
the answer to the request that made it.
"""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelrail.client import Client
from modelrail.entities import User
from modelrail.errors import InvalidRequestError
from modelrail.permissions import may, require
from modelrail.server import payload
from modelrail.server.artifact_routes import SignedIn

MAX_ROLES = 100


def identity_routes(client: Client, signed_in: SignedIn, api: str) -> list[Route]:
    async def admin(request: Request) -> User:
        user = await signed_in(request)
        require(user, "admin")
        return user

    def name_of(request: Request) -> str:
        return payload.checked_text("name", request.path_params["name"])

    async def users(request: Request) -> Response:
        await admin(request)
        return payload.answer(await run_in_threadpool(client.users))

    async def one_user(request: Request) -> Response:
        await admin(request)
        return payload.answer(await run_in_threadpool(client.get_user, name_of(request)))

    async def add_user(request: Request) -> Response:
        user = await admin(request)
        body = await payload.read_object(request, ("name", "roles"))
        name = payload.text(body, "name", required=True)
        roles = body.get("roles") or []
        if not isinstance(roles, list) or len(roles) > MAX_ROLES:
            raise InvalidRequestError(
                f"'roles' must be a list of at most {MAX_ROLES} roles", field="roles"
            )
        for role in roles:
            if not isinstance(role, str):
                raise InvalidRequestError("'roles' must hold strings", field="roles")
            payload.checked_text("roles", role)
        return payload.answer(
            await run_in_threadpool(lambda: client.add_user(name, roles, actor=user.name))
        )

    async def change_role(request: Request, grant: bool) -> Response:
        user = await admin(request)
        body = await payload.read_object(request, ("role", "environment"))
        role = payload.text(body, "role", required=True)
        environment = payload.text(body, "environment") or None
        name = name_of(request)
        change = client.grant_role if grant else client.revoke_role
        return payload.answer(
            await run_in_threadpool(lambda: change(name, role, environment, actor=user.name))
        )

    async def grant(request: Request) -> Response:
        return await change_role(request, grant=True)

    async def revoke_role(request: Request) -> Response:
        return await change_role(request, grant=False)

    async def disable(request: Request) -> Response:
        user = await admin(request)
        name = name_of(request)
        return payload.answer(
            await run_in_threadpool(lambda: client.disable_user(name, actor=user.name))
        )

    async def create_token(request: Request) -> Response:
        user = await admin(request)
        body = await payload.read_object(request, ("user", "label", "expires_in_days"))
        owner = payload.text(body, "user", required=True)
        label = payload.text(body, "label")
        days = body.get("expires_in_days")
        if days is not None and (
            not isinstance(days, int | float) or isinstance(days, bool) or not math.isfinite(days)
        ):
            raise InvalidRequestError(
                "'expires_in_days' must be a number of days", field="expires_in_days"
            )
        token, secret = await run_in_threadpool(
            lambda: client.create_token(owner, label, days, actor=user.name)
        )
        return payload.answer({"token": token, "secret": secret})

    async def tokens(request: Request) -> Response:
        user = await signed_in(request)
        owner = payload.query_text(request, "user")
        if not may(user.roles, "admin"):
            if owner is not None and owner != user.name:
                require(user, "admin")  # someone else's tokens: refused, naming admin
            owner = user.name
        return payload.answer(await run_in_threadpool(client.tokens, owner))

    async def revoke_token(request: Request) -> Response:
        user = await signed_in(request)
        token_id = payload.path_id("id", request.path_params["id"])
        if not may(user.roles, "admin"):
            own = await run_in_threadpool(client.tokens, user.name)
            if token_id not in {t.id for t in own}:
                require(user, "admin")
        return payload.answer(await run_in_threadpool(client.revoke_token, token_id))

    return [
        Route(f"{api}/users", users, methods=["GET"]),
        Route(f"{api}/users", add_user, methods=["POST"]),
        Route(f"{api}/users/{{name}}", one_user, methods=["GET"]),
        Route(f"{api}/users/{{name}}/roles", grant, methods=["POST"]),
        Route(f"{api}/users/{{name}}/roles/revoke", revoke_role, methods=["POST"]),
        Route(f"{api}/users/{{name}}/disable", disable, methods=["POST"]),
        Route(f"{api}/tokens", tokens, methods=["GET"]),
        Route(f"{api}/tokens", create_token, methods=["POST"]),
        Route(f"{api}/tokens/{{id}}/revoke", revoke_token, methods=["POST"]),
    ]

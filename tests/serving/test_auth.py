"""``modelrail serve --auth``: predictions need a token of a user with a role in the
environment served; health checks stay open; ``/metrics`` is guarded only when asked; a
revoked token stops working within the guard's few seconds; no token is ever echoed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelrail.entities import RoleGrant, User
from modelrail.errors import AuthenticationError
from modelrail.serving.auth import TokenGuard
from modelrail.serving.server import ServeOptions
from tests.serving.conftest import Zoo, records, running_server


@pytest.fixture(scope="module")
def tokens(zoo: Zoo) -> dict[str, str]:
    secrets = {}
    with zoo.client() as client:
        for name, roles in {"dana": ["viewer@dev"], "stan": ["member@staging"]}.items():
            client.add_user(name, roles)
            secrets[name] = client.create_token(name, label="serving")[1]
    return secrets


def _predict(server: Any, zoo: Zoo, token: str | None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = {"inputs": records(zoo.rows("cancer", count=2))}
    return server.http.request("POST", "/v1/models/cancer/predict", json_body=body, headers=headers)


def test_predictions_need_a_token_of_someone_with_a_role_there(
    zoo: Zoo, tokens: dict[str, str]
) -> None:
    options = ServeOptions(environment="dev", auth=True)
    with running_server(zoo.settings, options) as server:
        missing = _predict(server, zoo, None)
        assert missing.status == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        wrong = _predict(server, zoo, "mr_" + "x" * 43)
        assert wrong.status == 401 and b"mr_xxx" not in wrong.body
        other_environment = _predict(server, zoo, tokens["stan"])
        assert other_environment.status == 403 and b"in dev" in other_environment.body
        allowed = _predict(server, zoo, tokens["dana"])
        assert allowed.status == 200 and len(allowed.json()["predictions"]) == 2
        assert server.get("/health").status == 200
        assert server.get("/ready").status == 200
        assert server.get("/metrics").status == 200  # not guarded unless asked
        assert server.get("/v1/models").status == 401


def test_metrics_are_guarded_when_asked(zoo: Zoo, tokens: dict[str, str]) -> None:
    options = ServeOptions(environment="dev", auth=True, metrics_auth=True)
    with running_server(zoo.settings, options) as server:
        assert server.get("/metrics").status == 401
        reply = server.http.request(
            "GET", "/metrics", headers={"Authorization": f"Bearer {tokens['dana']}"}
        )
        assert reply.status == 200 and b"modelrail" in reply.body


def test_a_good_token_is_trusted_for_a_few_seconds_then_asked_again() -> None:
    now = [100.0]
    asked: list[str] = []
    revoked: set[str] = set()

    def authenticate(secret: str) -> User:
        asked.append(secret)
        if secret in revoked:
            raise AuthenticationError("that API token was revoked", reason="revoked")
        return User("dana", 0.0, "admin", roles=(RoleGrant("viewer", "dev"),))

    guard = TokenGuard(authenticate, "dev", ttl_s=5.0, clock=lambda: now[0])
    headers = [(b"authorization", b"Bearer mr_secret")]
    assert asyncio.run(guard.refusal(headers)) is None
    revoked.add("mr_secret")
    now[0] += 4.0
    assert asyncio.run(guard.refusal(headers)) is None  # still trusted, not asked again
    assert asked == ["mr_secret"]
    now[0] += 2.0
    refusal = asyncio.run(guard.refusal(headers))
    assert refusal is not None and refusal.status == 401
    assert asked == ["mr_secret", "mr_secret"]
    assert asyncio.run(guard.refusal([(b"authorization", b"Basic abc")])) is not None

"""Signing in over HTTP: bearer tokens on every route, refusals that never repeat the token,
revocation on the next request, and failed sign-ins throttled per address."""

from __future__ import annotations

import logging

import pytest

from modelrail.errors import ModelrailError
from modelrail.server import FailureThrottle
from tests.server.conftest import FakeClock, Team

ROUTES = [
    ("GET", "/api/v1/whoami"),
    ("GET", "/api/v1/models"),
    ("GET", "/api/v1/models/tiny/versions"),
    ("GET", "/api/v1/board"),
    ("GET", "/api/v1/history"),
    ("GET", "/api/v1/requests"),
    ("GET", "/api/v1/requests/1"),
    ("POST", "/api/v1/promotions"),
    ("POST", "/api/v1/requests/1/approve"),
    ("POST", "/api/v1/requests/1/reject"),
    ("POST", "/api/v1/rollbacks"),
]
UNKNOWN = "mr_" + "x" * 43


def test_whoami_names_the_signed_in_user_and_their_roles(team: Team) -> None:
    reply = team.get("/api/v1/whoami", "ann")
    assert reply.status == 200
    assert reply.json() == {"name": "ann", "roles": [{"role": "approver", "environment": "prod"}]}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_request_without_a_token(team: Team, method: str, path: str) -> None:
    reply = team.request(method, path, body={} if method == "POST" else None)
    assert reply.status == 401
    assert reply.json()["field"] == "Authorization"
    assert reply.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", [f"Bearer {UNKNOWN}", f"Basic {UNKNOWN}", UNKNOWN, "Bearer ", f"bearer {UNKNOWN}x"]
)
def test_unknown_or_malformed_tokens_are_refused_without_repeating_them(
    team: Team, header: str
) -> None:
    reply = team.get("/api/v1/whoami", headers={"Authorization": header})
    assert reply.status == 401
    assert set(reply.json()) == {"error", "field", "kind"}
    assert reply.json()["kind"] == "AuthenticationError"
    assert UNKNOWN not in reply.body.decode()
    assert "x" * 10 not in reply.body.decode()


def test_a_revoked_token_is_refused_on_the_next_request(team: Team) -> None:
    assert team.get("/api/v1/whoami", "mia").status == 200
    team.client.revoke_token(team.token_ids["mia"])
    refused = team.get("/api/v1/whoami", "mia")
    assert refused.status == 401
    assert "revoked" in refused.json()["error"]
    assert team.tokens["mia"] not in refused.body.decode()


def test_a_disabled_users_token_is_refused_on_the_next_request(team: Team) -> None:
    team.client.disable_user("max")
    assert team.get("/api/v1/whoami", "max").status == 401


def test_failed_sign_ins_are_throttled_per_address_then_forgiven(team: Team) -> None:
    for _ in range(10):
        assert team.get("/api/v1/whoami", token=UNKNOWN).status == 401
    throttled = team.get("/api/v1/whoami", "mia")  # even a good token, from this address
    assert throttled.status == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert throttled.json()["field"] == "Authorization"
    team.clock.now += 61
    assert team.get("/api/v1/whoami", "mia").status == 200


def test_requests_without_a_token_are_not_counted_as_failed_sign_ins(team: Team) -> None:
    for _ in range(15):
        assert team.get("/api/v1/whoami").status == 401
    assert team.get("/api/v1/whoami", "mia").status == 200


def test_the_throttle_counts_each_address_on_its_own_and_within_its_window() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
    with pytest.raises(ModelrailError) as refused:
        throttle.check("10.0.0.1")
    assert refused.value.http_status == 429
    throttle.check("10.0.0.2")
    clock.now += 30
    with pytest.raises(ModelrailError):
        throttle.check("10.0.0.1")
    clock.now += 31
    throttle.check("10.0.0.1")


def test_the_throttle_remembers_a_bounded_number_of_addresses() -> None:
    throttle = FailureThrottle(limit=1, clock=FakeClock(), max_addresses=2)
    for address in ("a", "b", "c"):
        throttle.failed(address)
    throttle.check("a")  # forgotten: the oldest of three
    with pytest.raises(ModelrailError):
        throttle.check("c")


def test_tokens_never_reach_the_logs(team: Team, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    team.get("/api/v1/whoami", "mia")
    team.get("/api/v1/whoami", token=UNKNOWN)
    team.client.revoke_token(team.token_ids["vic"])
    team.get("/api/v1/whoami", "vic")
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in (team.tokens["mia"], team.tokens["vic"], UNKNOWN):
        assert secret not in logged

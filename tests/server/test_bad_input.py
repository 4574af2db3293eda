"""Bad input over HTTP gets a 4xx naming the field at fault: never a 5xx, never a traceback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import MODEL, Reply, Team, register

PROMOTE = "/api/v1/promotions"
ROLLBACK = "/api/v1/rollbacks"


def _refused(reply: Reply, status: int, field: str | None) -> None:
    assert reply.status == status, reply.body
    assert "Traceback" not in reply.body.decode()
    assert reply.json()["field"] == field


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 400, "body"),
        (b'"prod"', 400, "body"),
        (b"\xff\xfe", 400, "body"),
        (b"[" * 100_000, 400, "body"),
        (b'{"reference": 7, "to": "staging"}', 422, "reference"),
        (b'{"to": "staging"}', 422, "reference"),
        (b'{"reference": "tiny:1"}', 422, "to"),
        (b'{"reference": "tiny:1", "to": ["prod"]}', 422, "to"),
        (b'{"reference": "tiny:1", "to": "staging", "force": "yes"}', 422, "force"),
        (b'{"reference": "tiny:1", "to": "staging", "if_holds": -1}', 422, "if_holds"),
        (b'{"reference": "tiny:1", "to": "staging", "if_holds": 1e300}', 422, "if_holds"),
        (b'{"reference": "tiny:1", "to": "staging", "if_holds": true}', 422, "if_holds"),
        (b'{"reference": "tiny:1", "to": "staging", "reason": "a\\u0000b"}', 422, "reason"),
        (b'{"reference": "tiny:1", "to": "staging", "reason": "\\ud800"}', 422, "reason"),
        (b'{"reference": "tiny:1", "to": "staging", "colour": "red"}', 422, "colour"),
    ],
)
def test_malformed_promotion_bodies_are_refused_naming_the_field(
    team: Team, raw: bytes, status: int, field: str
) -> None:
    register(team.client)
    _refused(team.request("POST", PROMOTE, user="mia", raw=raw), status, field)
    assert team.client.history(MODEL, "staging") == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"environment": "prod"}, 422, "model"),
        ({"model": MODEL}, 422, "environment"),
        ({"model": MODEL, "environment": "prod", "to_version": "one"}, 422, "to_version"),
        ({"model": MODEL, "environment": "prod", "to_version": 2**40}, 422, "to_version"),
        ({"model": MODEL, "environment": "prod", "reason": 5}, 422, "reason"),
        ({"model": MODEL, "environment": "prod", "reason": "x" * 20_000}, 422, "reason"),
    ],
)
def test_malformed_rollback_bodies_are_refused_naming_the_field(
    team: Team, body: dict[str, Any], status: int, field: str
) -> None:
    _refused(team.post(ROLLBACK, "ada", body), status, field)


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("POST", "/api/v1/requests/abc/approve", 422, "id"),
        ("POST", "/api/v1/requests/0/approve", 422, "id"),
        ("POST", "/api/v1/requests/99999999999999999999/reject", 422, "id"),
        ("POST", "/api/v1/requests/%D9%A3/reject", 422, "id"),  # an Arabic-Indic digit
        ("POST", "/api/v1/requests/7/approve", 404, None),
        ("GET", "/api/v1/requests/7", 404, None),
        ("GET", "/api/v1/requests?status=bogus", 422, "status"),
        ("GET", "/api/v1/models/nope/versions", 404, None),
        ("GET", "/api/v1/models/a%00b/versions", 422, "name"),
        ("GET", "/api/v1/history?model=a%00b", 422, "model"),
        ("GET", "/api/v1/nothing-here", 404, None),
        ("GET", "/api/v1/promotions", 405, None),
    ],
)
def test_bad_paths_and_query_strings_get_a_4xx(
    team: Team, method: str, path: str, status: int, field: str | None
) -> None:
    _refused(
        team.request(method, path, user="ada", body={} if method == "POST" else None), status, field
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"reference": "nope:1", "to": "staging"}, 404),
        ({"reference": f"{MODEL}:9", "to": "staging"}, 404),
        ({"reference": f"{MODEL}:1", "to": "moon"}, 404),
        ({"reference": "not a reference!", "to": "staging"}, 400),
        ({"reference": f"{MODEL}:1", "to": "dev"}, 409),  # dev holds it already
        ({"reference": f"{MODEL}:1", "to": "staging", "if_holds": 3}, 409),
    ],
)
def test_library_errors_answer_with_their_status(
    team: Team, body: dict[str, Any], status: int
) -> None:
    register(team.client)
    team.client.grant_role("mia", "member", "moon") if False else None
    reply = team.post(PROMOTE, "ada", body)
    assert reply.status == status, reply.body
    assert "Traceback" not in reply.body.decode()
    assert set(reply.json()) >= {"error", "field"}


def test_a_body_over_the_limit_is_refused(team: Team) -> None:
    reply = team.request(
        "POST", PROMOTE, user="mia", raw=b'{"reason": "' + b"x" * (2 << 20) + b'"}'
    )
    _refused(reply, 413, "body")

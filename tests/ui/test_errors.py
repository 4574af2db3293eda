"""Bad input, unknown things and an unreachable store give a readable page with the right
status, never a traceback."""

from __future__ import annotations

import dataclasses

import pytest

from modelrail.ui import create_app
from tests.ui.conftest import MODEL, Seeded, UiServer, running_ui

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/x"


def assert_error_page(reply_status: int, text: str, status: int, words: str) -> None:
    assert reply_status == status, text[-800:]
    assert f'data-testid="error-message" data-status="{status}"' in text
    assert words in text
    assert "Traceback" not in text and 'File "' not in text


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/runs/0123456789abcdef0123456789abcdef", 404, "no run with id"),
        ("/runs/zz", 404, "no run with id"),
        ("/runs/0123456789abcdef0123456789abcdef/artifacts/x.txt", 404, "no run with id"),
        ("/models/no-such-model", 404, "no model named"),
        (f"/models/{MODEL}/promote?version=99&to=staging", 404, "has no version 99"),
        (f"/models/{MODEL}/promote?version=1&to=qa", 404, "unknown environment"),
        (f"/models/{MODEL}/promote?version=abc&to=staging", 400, "version must be"),
        (f"/models/{MODEL}/promote?to=staging", 400, "version is missing"),
        (f"/models/{MODEL}/rollback", 400, "env is missing"),
        ("/requests/999/approve", 404, "no approval request 999"),
        ("/batch/0123456789abcdef", 404, "no batch run"),
        ("/batch/ab", 400, "too short"),
        ("/batch?status=sleeping", 400, "status must be one of"),
        ("/?min%3Aaccuracy=abc", 400, "min:accuracy must be a number, not &#39;abc&#39;"),
        ("/?max%3Aloss=inf", 400, "max:loss must be a finite number"),
        ("/?page=0", 400, "page must be a whole number"),
        ("/?page=two", 400, "page must be a whole number"),
        ("/?page=9", 404, "page 9 does not exist"),
        ("/?status=sleeping", 400, "status must be one of"),
        ("/?order=sideways", 400, "order must be"),
        ("/?tag=%3Dred", 400, "needs a key"),
        ("/?sort=component%3Ahat", 400, "cannot sort by component"),
        ("/compare?run=abcd", 400, "pick at least two runs"),
        (
            "/compare?run=0123456789abcdef0123456789abcdef&run=fedcba9876543210fedcba9876543210",
            404,
            "no run with id",
        ),
        ("/no/such/page", 404, "there is no such page"),
        ("/static/nothing.css", 404, "there is no such page"),
    ],
)
def test_bad_requests_get_a_readable_page_with_the_right_status(
    ui: UiServer, path: str, status: int, words: str
) -> None:
    reply = ui.get(path)
    assert_error_page(reply.status, reply.text, status, words)
    assert reply.headers["content-type"].startswith("text/html")


def test_a_wrong_method_is_405(ui: UiServer) -> None:
    reply = ui.post("/models")
    assert_error_page(reply.status, reply.text, 405, "Method Not Allowed")


def test_an_unreachable_store_is_a_503_page_and_the_server_keeps_running(seeded: Seeded) -> None:
    settings = dataclasses.replace(seeded.settings, store_url=UNREACHABLE)
    with running_ui(create_app(settings)) as server:
        for path in ("/", f"/models/{MODEL}", "/batch", f"/runs/{seeded.runs['v1']}"):
            reply = server.get(path)
            assert_error_page(reply.status, reply.text, 503, "127.0.0.1")
            assert "Connection refused" in reply.text or "connection failed" in reply.text
        posted = server.visitor().post(
            f"/models/{MODEL}/promote", {"version": "1", "to": "staging"}
        )
        assert posted.status == 503
        assert server.get("/health").status == 200


def test_the_store_is_opened_again_once_it_can_be_reached(seeded: Seeded) -> None:
    from modelrail.client import Client

    attempts: list[int] = []

    def flaky() -> Client:
        attempts.append(1)
        store = UNREACHABLE if len(attempts) == 1 else None
        return Client(store_url=store, settings=seeded.settings)

    with running_ui(create_app(flaky)) as server:
        assert server.get("/").status == 503
        assert server.get("/").status == 200
        assert server.get("/models").status == 200
    assert len(attempts) == 2  # then shared by every request

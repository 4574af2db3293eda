"""Promote, approve, reject and roll back from the dashboard: the gates are shown before
anything changes, the same rules as on the command line apply, and changes need the token."""

from __future__ import annotations

import re

from tests.ui.conftest import MODEL, Fresh, Reply, Visitor

PROMOTE = f"/models/{MODEL}/promote"
ROLLBACK = f"/models/{MODEL}/rollback"


def gates(reply: Reply) -> list[tuple[str, str]]:
    return re.findall(r'data-testid="gate-row" data-gate="([^"]*)" data-passed="(\w+)"', reply.text)


def follow(server: Visitor, reply: Reply) -> Reply:
    assert reply.status == 303, reply.text[-600:]
    return server.get(reply.headers["location"])


def test_promote_shows_the_gates_then_moves_the_version_on_confirm(fresh: Fresh) -> None:
    server = fresh.serve().visitor()
    check = server.get(f"{PROMOTE}?version=1&to=staging")
    assert check.status == 200
    assert gates(check) == [
        ("min accuracy &gt;= 0.9", "true"),
        ("signature compatible", "true"),
        ("smoke test within 500 ms", "true"),
    ]
    assert check.count("confirm-button") == 1
    assert fresh.board() == {"dev": 3}  # looking changes nothing

    done = server.post(PROMOTE, {"version": "1", "to": "staging", "reason": "first candidate"})
    assert done.status == 303
    assert re.fullmatch(rf"/models/{MODEL}\?done=event-\d+", done.headers["location"])
    assert fresh.board() == {"dev": 3, "staging": 1}
    page = follow(server, done)
    assert 'data-testid="notice"' in page.text
    assert f"alice promoted {MODEL} version 1 in staging (was empty)" in page.text
    assert 'data-action="promote"' in page.text and "first candidate" in page.text


def test_a_failed_gate_is_shown_and_nothing_changes(fresh: Fresh) -> None:
    server = fresh.serve().visitor()
    check = server.get(f"{PROMOTE}?version=2&to=staging")
    assert check.status == 200
    assert ("min accuracy &gt;= 0.9", "false") in gates(check)
    assert 'data-testid="gate-summary" data-failed="1"' in check.text
    assert check.count("confirm-button") == 0

    forced_post = server.post(PROMOTE, {"version": "2", "to": "staging"})
    assert forced_post.status == 422
    assert 'data-testid="error-message"' in forced_post.text
    assert "did not pass the gates of staging" in forced_post.text
    assert ("min accuracy &gt;= 0.9", "false") in gates(forced_post)
    assert fresh.board() == {"dev": 3}


def test_the_chain_rule_is_a_409_page(fresh: Fresh) -> None:
    server = fresh.serve().visitor()
    reply = server.get(f"{PROMOTE}?version=3&to=prod")
    assert reply.status == 409
    assert "has never been in staging" in reply.text
    posted = server.post(PROMOTE, {"version": "3", "to": "prod"})
    assert posted.status == 409
    assert fresh.board() == {"dev": 3}


def test_prod_needs_approval_by_a_second_person(fresh: Fresh) -> None:
    server = fresh.serve().visitor()
    assert server.post(PROMOTE, {"version": "1", "to": "staging"}).status == 303
    check = server.get(f"{PROMOTE}?version=1&to=prod")
    assert 'data-testid="approval-note"' in check.text
    assert ("runtime compatible", "true") in gates(check)

    # A request alice withdraws (rejects) herself, then a second one that bob approves.
    first = server.post(PROMOTE, {"version": "1", "to": "prod", "reason": "ready"})
    assert first.headers["location"] == f"/models/{MODEL}?done=request-1"
    page = follow(server, first)
    assert "waiting for approval by someone other than alice" in page.text
    assert page.count("pending-request") == 1
    rejected = server.post("/requests/1/reject", {"reason": "not yet"})
    assert "request 1 was rejected by alice" in follow(server, rejected).text
    assert fresh.board() == {"dev": 3, "staging": 1}

    server.post(PROMOTE, {"version": "1", "to": "prod", "reason": "ready now"})
    own = server.get("/requests/2/approve")
    assert own.status == 200
    assert 'data-testid="blocked-message"' in own.text and own.count("confirm-button") == 0
    refused = server.post("/requests/2/approve")
    assert refused.status == 403
    assert "needs approval by someone else" in refused.text

    # A store without users records every dashboard change as its local user, so the page
    # says where a second person approves (with users: tests/ui/test_ui_identity.py).
    assert "MODELRAIL_USER=NAME modelrail approve 2" in own.text
    with fresh.seeded.client("bob") as bob:
        bob.approve(2, reason="reviewed")
    assert fresh.board() == {"dev": 3, "staging": 1, "prod": 1}
    page = server.get(f"/models/{MODEL}")
    assert re.search(r'data-action="approve"[^>]*>.*?by bob', page.text, re.DOTALL)


def test_rollback_confirms_then_walks_back(fresh: Fresh) -> None:
    server = fresh.serve().visitor()
    check = server.get(f"{ROLLBACK}?env=dev")
    assert check.status == 200
    assert re.findall(r'<option value="(\d+)">version', check.text) == ["2", "1"]
    assert check.count("confirm-button") == 1
    assert fresh.board() == {"dev": 3}

    back = server.post(ROLLBACK, {"env": "dev", "reason": "3 misbehaves"})
    assert "rolled back to" in follow(server, back).text
    assert fresh.board() == {"dev": 2}
    server.post(ROLLBACK, {"env": "dev", "to_version": "1"})
    assert fresh.board() == {"dev": 1}

    empty = server.get(f"{ROLLBACK}?env=prod")
    assert 'data-testid="blocked-message"' in empty.text and empty.count("confirm-button") == 0
    refused = server.post(ROLLBACK, {"env": "prod"})
    assert refused.status == 409 and "nothing to roll back" in refused.text
    never = server.post(ROLLBACK, {"env": "dev", "to_version": "9"})
    assert never.status == 409 and "was never in dev" in never.text


def test_with_a_token_changes_need_it_and_reading_does_not(fresh: Fresh) -> None:
    server = fresh.serve(token="s3cret")
    assert server.get("/").status == 200
    assert server.get(f"{PROMOTE}?version=1&to=staging").status == 200

    anonymous = server.post(PROMOTE, {"version": "1", "to": "staging"})
    assert anonymous.status == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert 'data-testid="error-message"' in anonymous.text
    wrong = server.post(
        PROMOTE, {"version": "1", "to": "staging"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status == 403
    carol = server.visitor()
    wrong_login = carol.post("/login", {"token": "nope"})
    assert wrong_login.status == 403 and "wrong token" in wrong_login.text
    forged = server.post(
        PROMOTE,
        {"version": "1", "to": "staging"},
        headers={"Cookie": "modelrail_ui_session=Ym9i.0"},
    )
    assert forged.status == 401
    assert carol.post(PROMOTE, {"version": "1", "to": "staging"}).status == 401  # not logged in
    assert fresh.board() == {"dev": 3}

    login = carol.post("/login", {"token": "s3cret", "name": "carol"})  # a name: ignored
    assert login.status == 303
    promoted = carol.post(PROMOTE, {"version": "1", "to": "staging"})
    assert promoted.status == 303
    assert fresh.board() == {"dev": 3, "staging": 1}
    assert "alice promoted" in follow(carol, promoted).text  # the local user, as the CLI

    bearer = server.post(ROLLBACK, {"env": "dev"}, headers={"Authorization": "Bearer s3cret"})
    assert bearer.status == 303
    assert fresh.board() == {"dev": 2, "staging": 1}


def test_a_form_posted_from_another_site_is_refused(fresh: Fresh) -> None:
    server = fresh.serve().visitor()
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        reply = server.post(PROMOTE, {"version": "1", "to": "staging"}, headers=headers)
        assert reply.status == 403, headers
    same = server.post(
        PROMOTE, {"version": "1", "to": "staging"}, headers={"Origin": server.origin}
    )
    assert same.status == 303
    assert fresh.board() == {"dev": 3, "staging": 1}

"""Sessions and form tokens: every visitor gets an HttpOnly, SameSite=Strict session cookie,
every form carries the CSRF token of its session, and a POST without it, with a wrong one
or with another session's token changes nothing."""

from __future__ import annotations

import re

import pytest

from tests.ui.conftest import MODEL, Fresh, Reply, UiServer
from tests.ui.test_guard import (
    FORM,
    PROMOTE,
    assert_not_promoted,
    assert_refused,
    at_the_check_page,
    same_origin,
)

SESSION = "modelrail_ui_session="
BEARER = {"Authorization": "Bearer s3cret"}


def post_forms(reply: Reply) -> list[str]:
    return re.findall(r'<form method="post".*?</form>', reply.text, re.DOTALL)


def test_the_first_page_starts_a_session_in_a_strict_http_only_cookie(ui: UiServer) -> None:
    reply = ui.get("/")
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(SESSION)
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # reached over http
    assert re.search(r'<meta name="csrf-token" content="[0-9a-f]{64}">', reply.text)
    again = ui.get("/models", headers={"Cookie": cookie.split(";", 1)[0]})
    assert "set-cookie" not in again.headers  # kept, not renewed
    assert "set-cookie" not in ui.get("/static/app.css").headers
    assert "set-cookie" not in ui.get("/health").headers


def test_every_form_that_posts_carries_the_token_of_its_session(fresh: Fresh) -> None:
    server = fresh.serve(token="s3cret")
    alice = server.visitor()
    assert alice.post("/login", {"token": "s3cret"}).status == 303
    assert alice.post(PROMOTE, {"version": "1", "to": "staging"}).status == 303
    assert alice.post(PROMOTE, {"version": "1", "to": "prod"}).status == 303  # a request
    bob = server.visitor()
    assert bob.post("/login", {"token": "s3cret"}).status == 303
    pages = {
        "/login": 2,  # log in, and log out (in the header of every page)
        f"/models/{MODEL}": 2,  # reject the request
        f"{PROMOTE}?version=3&to=staging": 2,
        f"/models/{MODEL}/rollback?env=dev": 2,
        "/requests/1/approve": 1,  # the local user made it: no approving it
        "/": 1,
    }
    tokens = set()
    for path, count in pages.items():
        reply = bob.get(path)
        assert reply.status == 200, path
        forms = post_forms(reply)
        assert len(forms) == count, path
        for form in forms:
            assert f'name="csrf_token" value="{bob.csrf_token}"' in form, (path, form)
        tokens.add(bob.csrf_token)
    assert len(tokens) == 1
    alice.get("/login")
    assert alice.csrf_token not in tokens


def test_a_form_without_its_csrf_token_is_refused(fresh: Fresh) -> None:
    server, alice = at_the_check_page(fresh)
    reply = server.post(
        PROMOTE, FORM, headers={"Cookie": alice.cookie, **same_origin(server)}
    )  # the session cookie, but no token in the form
    assert_refused(reply, 403, "carries no CSRF token")
    assert_not_promoted(fresh)


def test_a_form_with_a_wrong_csrf_token_is_refused(fresh: Fresh) -> None:
    server, alice = at_the_check_page(fresh)
    for wrong in ("0" * 64, alice.csrf_token[:-1], alice.csrf_token + "0", "é"):
        form = {**FORM, "csrf_token": wrong}
        reply = alice.post(PROMOTE, form, headers=same_origin(server))
        assert_refused(reply, 403, "does not belong to your session")
    assert_not_promoted(fresh)


def test_the_csrf_token_of_another_session_is_refused(fresh: Fresh) -> None:
    server = fresh.serve()
    attacker, alice = server.visitor(), server.visitor()
    attacker.get("/login")
    alice.get("/login")
    assert attacker.csrf_token != alice.csrf_token
    stolen = {**FORM, "csrf_token": attacker.csrf_token}
    reply = alice.post(PROMOTE, stolen, headers=same_origin(server))
    assert_refused(reply, 403, "does not belong to your session")
    # Without any session cookie, a token alone is no session either.
    bare = server.post(PROMOTE, stolen, headers=same_origin(server))
    assert_refused(bare, 403, "does not belong to your session")
    assert bare.headers["set-cookie"].startswith(SESSION)  # a session to reload with
    assert_not_promoted(fresh)


def test_logging_in_starts_a_new_session_and_needs_the_form_token(fresh: Fresh) -> None:
    server = fresh.serve(token="s3cret")
    alice = server.visitor()
    alice.get("/login")
    before, old_cookie = alice.csrf_token, alice.cookie

    refused = server.post("/login", {"token": "s3cret"}, headers={"Cookie": alice.cookie})
    assert_refused(refused, 403, "carries no CSRF token")
    assert "set-cookie" not in refused.headers

    assert alice.post("/login", {"token": "s3cret"}).status == 303
    assert alice.cookie != old_cookie
    stale = alice.post(PROMOTE, {**FORM, "csrf_token": before})
    assert_refused(stale, 403, "does not belong")  # the token from before logging in
    assert_not_promoted(fresh)
    assert alice.post(PROMOTE, {"version": "1", "to": "staging"}).status == 303

    out = server.post("/logout", headers={"Cookie": alice.cookie})
    assert_refused(out, 403, "carries no CSRF token")  # logging out is a form too
    assert alice.post("/logout").status == 303
    assert alice.cookie == ""


def test_without_a_server_token_a_bearer_header_does_not_replace_the_form_token(
    fresh: Fresh,
) -> None:
    server = fresh.serve()
    reply = server.post(PROMOTE, FORM, headers={"Authorization": "Bearer anything"})
    assert_refused(reply, 403, "carries no CSRF token")
    assert_not_promoted(fresh)


@pytest.mark.parametrize("who", ["bearer", "login"])
def test_with_a_server_token_the_bearer_needs_no_form_token_but_a_login_does(
    fresh: Fresh, who: str
) -> None:
    server = fresh.serve(token="s3cret")
    if who == "bearer":
        done = server.post(PROMOTE, {"version": "1", "to": "staging"}, headers=BEARER)
        assert done.status == 303
        assert fresh.board() == {"dev": 3, "staging": 1}
        return
    carol = server.visitor()
    assert carol.post("/login", {"token": "s3cret", "name": "carol"}).status == 303
    reply = server.post(PROMOTE, FORM, headers={"Cookie": carol.cookie})
    assert_refused(reply, 403, "carries no CSRF token")
    assert_not_promoted(fresh)

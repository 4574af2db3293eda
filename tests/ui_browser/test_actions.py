"""Promote, approve and roll back by clicking through the dashboard in a real browser, and
check the store afterwards: what the pages say happened is what the store holds."""

from __future__ import annotations

import re

from tests.ui.conftest import MODEL, Fresh
from tests.ui_browser.conftest import ReadmeShot, require_playwright

require_playwright()

from playwright.sync_api import Page, expect  # noqa: E402

MODEL_PAGE = f"/models/{MODEL}"
DONE = re.compile(rf"{MODEL_PAGE}\?done=(event|request)-\d+$")
STAGING_GATES = ["min accuracy >= 0.9", "signature compatible", "smoke test within 500 ms"]


def env_version(page: Page, environment: str) -> str:
    column = page.locator(f'[data-testid="env-column"][data-env="{environment}"]')
    return column.get_by_test_id("env-version").inner_text().strip()


def open_promote_check(page: Page, origin: str, version: int, to: str) -> None:
    """From the model page, through the promote form, to the page that shows the gates."""
    page.goto(origin + MODEL_PAGE)
    page.get_by_test_id("promote-version").select_option(str(version))
    page.get_by_test_id("promote-to").select_option(to)
    page.get_by_test_id("promote-button").click()
    page.wait_for_url(re.compile(rf"/promote\?version={version}&to={to}$"))


def confirm(page: Page, reason: str) -> None:
    page.get_by_test_id("confirm-reason").fill(reason)
    page.get_by_test_id("confirm-button").click()
    page.wait_for_url(DONE)


def test_promoting_shows_the_gates_then_moves_the_version(
    page: Page, fresh: Fresh, readme_shot: ReadmeShot
) -> None:
    server = fresh.serve()
    page.goto(server.origin + "/models")
    page.locator(f'[data-testid="model-row"][data-model="{MODEL}"]').get_by_test_id(
        "model-link"
    ).click()
    page.wait_for_url(server.origin + MODEL_PAGE)
    assert env_version(page, "dev") == "3" and env_version(page, "staging") == "-"

    open_promote_check(page, server.origin, 1, "staging")
    rows = page.get_by_test_id("gate-row")
    expect(rows).to_have_count(3)
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.gate)") == STAGING_GATES
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.passed)") == ["true"] * 3
    expect(page.get_by_test_id("gate-summary")).to_have_text("All 3 gates pass.")
    expect(page.get_by_test_id("check-holding")).to_have_text("nothing")
    readme_shot("promote-check")
    assert fresh.board() == {"dev": 3}  # looking changes nothing

    confirm(page, "first candidate")
    expect(page.get_by_test_id("notice")).to_contain_text(
        f"alice promoted {MODEL} version 1 in staging (was empty)"
    )
    assert env_version(page, "staging") == "1"
    newest = page.get_by_test_id("history-event").first
    expect(newest).to_have_attribute("data-action", "promote")
    expect(newest).to_contain_text("first candidate")

    assert fresh.board() == {"dev": 3, "staging": 1}
    with fresh.seeded.client() as client:
        event = client.history(MODEL, "staging")[-1]
    assert (event.action, event.from_version, event.to_version) == ("promote", None, 1)
    assert (event.actor, event.reason, event.forced) == ("alice", "first candidate", False)
    assert [g.gate for g in event.gates] == STAGING_GATES and all(g.passed for g in event.gates)
    expect(newest).to_have_attribute("data-event-id", str(event.id))

    page.get_by_test_id("nav-models").click()
    page.wait_for_url(server.origin + "/models")
    row = page.locator(f'[data-testid="model-row"][data-model="{MODEL}"]')
    cells = row.get_by_test_id("board-cell")
    shown = cells.evaluate_all("cs => cs.map(c => [c.dataset.env, c.dataset.version])")
    assert {env: int(v) for env, v in shown if v} == fresh.board()


def test_a_promotion_whose_gates_fail_shows_them_and_changes_nothing(
    page: Page, fresh: Fresh
) -> None:
    server = fresh.serve()
    open_promote_check(page, server.origin, 2, "staging")
    failed = page.locator('[data-testid="gate-row"][data-passed="false"]')
    expect(failed).to_have_count(1)
    expect(failed).to_have_attribute("data-gate", "min accuracy >= 0.9")
    expect(failed.locator(".verdict")).to_have_text("FAIL")
    expect(page.get_by_test_id("gate-summary")).to_have_attribute("data-failed", "1")
    expect(page.get_by_test_id("gate-summary")).to_contain_text("1 of 3 gates fail")
    expect(page.get_by_test_id("confirm-form")).to_have_count(0)  # nothing to confirm
    assert fresh.board() == {"dev": 3}

    # A stale or hand-made form that posts it anyway (with the page's CSRF token, as the
    # dashboard's own forms do) gets the gate results, and no change.
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.evaluate(
            """([action, version]) => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = action;
                const token = document.querySelector('meta[name="csrf-token"]').content;
                const fields = [["version", version], ["to", "staging"], ["csrf_token", token]];
                for (const [name, value] of fields) {
                    const input = document.createElement("input");
                    input.type = "hidden"; input.name = name; input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""",
            [f"{MODEL_PAGE}/promote", "2"],
        )
    assert posted.value.status == 422
    page.wait_for_load_state()
    error = page.get_by_test_id("error-message")
    expect(error).to_have_attribute("data-status", "422")
    expect(error).to_contain_text("did not pass the gates of staging")
    expect(page.locator('[data-testid="gate-row"][data-passed="false"]')).to_have_count(1)
    expect(page.get_by_text("Nothing was changed.")).to_be_visible()
    assert fresh.board() == {"dev": 3}
    with fresh.seeded.client() as client:
        assert client.history(MODEL, "staging") == []


def test_rolling_back_through_the_ui(page: Page, fresh: Fresh) -> None:
    server = fresh.serve()
    page.goto(server.origin + MODEL_PAGE)
    expect(page.get_by_test_id("rollback-button-staging")).to_have_count(0)  # holds nothing
    page.get_by_test_id("rollback-button-dev").click()
    page.wait_for_url(re.compile(r"/rollback\?env=dev$"))
    expect(page.get_by_test_id("check-holding")).to_have_text("3")
    choices = page.get_by_test_id("rollback-to-version").locator("option")
    assert choices.evaluate_all("os => os.map(o => o.value)") == ["", "2", "1"]
    expect(page.get_by_test_id("gate-row")).to_have_count(0)  # a rollback runs no gates
    assert fresh.board() == {"dev": 3}

    confirm(page, "3 misbehaves")  # the default: the version held before
    expect(page.get_by_test_id("notice")).to_contain_text(
        f"alice rolled back to {MODEL} version 2 in dev (was version 3)"
    )
    assert env_version(page, "dev") == "2"
    expect(page.get_by_test_id("history-event").first).to_have_attribute("data-action", "rollback")
    assert fresh.board() == {"dev": 2}

    page.get_by_test_id("rollback-button-dev").click()
    page.wait_for_url(re.compile(r"/rollback\?env=dev$"))
    page.get_by_test_id("rollback-to-version").select_option("1")
    confirm(page, "back to the first")
    assert env_version(page, "dev") == "1"

    assert fresh.board() == {"dev": 1}
    with fresh.seeded.client() as client:
        history = client.history(MODEL, "dev")
    assert [(e.action, e.from_version, e.to_version) for e in history] == [
        ("auto", None, 1),
        ("auto", 1, 2),
        ("auto", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]
    assert [(e.actor, e.reason) for e in history[-2:]] == [
        ("alice", "3 misbehaves"),
        ("alice", "back to the first"),
    ]
    shown = page.get_by_test_id("history-event").evaluate_all(
        "es => es.map(e => Number(e.dataset.eventId))"
    )
    assert shown == [e.id for e in reversed(history)]  # newest first, every event


def test_the_rollback_page_offers_no_default_the_store_refuses(page: Page, fresh: Fresh) -> None:
    server = fresh.serve()
    with fresh.seeded.client() as client:
        client.rollback(MODEL, "dev", to_version=1)
    page.goto(server.origin + f"{MODEL_PAGE}/rollback?env=dev")
    values = page.get_by_test_id("rollback-to-version").locator("option")
    if "" in values.evaluate_all("os => os.map(o => o.value)"):  # a default is offered...
        page.get_by_test_id("rollback-to-version").select_option("")
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.get_by_test_id("confirm-button").click()
        assert posted.value.status == 303  # ...so confirming it must work
    else:
        page.get_by_test_id("rollback-to-version").select_option("3")
        confirm(page, "")
        assert fresh.board() == {"dev": 3}


def sign_in(page: Page, token: str) -> None:
    """Through the sign-in page the dashboard leads to, with a personal API token."""
    page.wait_for_url(re.compile(r"/login\?next="))
    expect(page.get_by_test_id("login-name")).to_have_count(0)  # no names, only tokens
    page.get_by_test_id("login-token").fill(token)
    page.get_by_test_id("login-button").click()


def test_promotion_to_prod_waits_for_a_second_person_to_approve(
    page: Page, fresh: Fresh, readme_shot: ReadmeShot
) -> None:
    server = fresh.serve()
    with fresh.seeded.client() as client:
        client.promote(f"{MODEL}:1", "staging", reason="first candidate")
        mia = client.create_token(client.add_user("mia", ["member"]).name)[1]
        ann = client.create_token(client.add_user("ann", ["approver@prod"]).name)[1]
    page.goto(server.origin + MODEL_PAGE)  # a store with users: sign in first
    sign_in(page, mia)
    page.wait_for_url(server.origin + MODEL_PAGE)
    expect(page.get_by_test_id("signed-in-as")).to_contain_text("signed in as mia")
    expect(page.get_by_test_id("roles")).to_have_text("(member)")
    open_promote_check(page, server.origin, 1, "prod")
    expect(page.get_by_test_id("approval-note")).to_be_visible()
    expect(page.get_by_test_id("confirm-button")).to_have_text(
        f"Request approval {MODEL}:1 to prod"
    )
    confirm(page, "ready")
    expect(page.get_by_test_id("notice")).to_contain_text("waiting for approval")
    assert fresh.board() == {"dev": 3, "staging": 1}  # not yet

    request = page.get_by_test_id("pending-request")
    expect(request).to_have_count(1)
    expect(request.get_by_test_id("approve-button")).to_have_count(0)  # mia may not approve
    expect(request.get_by_test_id("approver-needed")).to_contain_text("approver in prod")

    page.get_by_test_id("logout-button").click()
    page.goto(server.origin + MODEL_PAGE)
    sign_in(page, ann)
    page.wait_for_url(server.origin + MODEL_PAGE)
    expect(page.get_by_test_id("signed-in-as")).to_contain_text("signed in as ann")
    expect(page.get_by_test_id("roles")).to_have_text("(approver in prod)")
    expect(page.get_by_test_id("promote-form")).to_have_count(0)  # approvers do not request
    page.get_by_test_id("pending-request").get_by_test_id("approve-button").click()
    page.wait_for_url(re.compile(r"/requests/\d+/approve$"))
    expect(page.get_by_test_id("gate-row")).to_have_count(5)  # "safe format" among them
    confirm(page, "reviewed")
    expect(page.get_by_test_id("notice")).to_contain_text(
        f"ann approved and moved {MODEL} version 1 in prod"
    )
    assert env_version(page, "prod") == "1"
    expect(page.get_by_test_id("pending-request")).to_have_count(0)

    assert fresh.board() == {"dev": 3, "staging": 1, "prod": 1}
    with fresh.seeded.client() as client:
        event = client.history(MODEL, "prod")[-1]
    assert (event.action, event.to_version, event.actor) == ("approve", 1, "ann")
    readme_shot("model")


def test_with_a_token_a_change_needs_a_login(page: Page, fresh: Fresh) -> None:
    server = fresh.serve(token="s3cret")
    page.goto(server.origin + "/")
    expect(page.get_by_test_id("nav-login")).to_have_text("log in")
    open_promote_check(page, server.origin, 1, "staging")  # reading needs no token

    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        page.get_by_test_id("confirm-button").click()
    assert refused.value.status == 401
    page.wait_for_load_state()
    expect(page).to_have_title("Sign in first · modelrail")
    expect(page.get_by_test_id("error-message")).to_have_attribute("data-status", "401")
    assert fresh.board() == {"dev": 3}

    page.get_by_test_id("error-login-link").click()
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_test_id("login-token").fill("wrong")
    with page.expect_response(lambda r: r.request.method == "POST") as wrong:
        page.get_by_test_id("login-button").click()
    assert wrong.value.status == 403
    page.wait_for_load_state()
    expect(page.get_by_test_id("error-message")).to_contain_text("wrong token")

    page.goto(server.origin + "/login")
    page.get_by_test_id("login-token").fill("s3cret")
    page.get_by_test_id("login-button").click()
    page.wait_for_url(server.origin + "/")
    expect(page.get_by_test_id("acting-as")).to_contain_text("acting as alice")  # local user
    expect(page.get_by_test_id("logout-button")).to_be_visible()

    open_promote_check(page, server.origin, 1, "staging")
    confirm(page, "with the token")
    expect(page.get_by_test_id("notice")).to_contain_text(f"alice promoted {MODEL} version 1")
    assert fresh.board() == {"dev": 3, "staging": 1}
    with fresh.seeded.client() as client:
        event = client.history(MODEL, "staging")[-1]
    assert (event.actor, event.reason) == ("alice", "with the token")

    page.get_by_test_id("logout-button").click()
    page.wait_for_url(server.origin + "/")
    expect(page.get_by_test_id("nav-login")).to_have_text("log in")
    page.goto(server.origin + MODEL_PAGE)
    page.get_by_test_id("rollback-button-dev").click()
    page.wait_for_url(re.compile(r"/rollback\?env=dev$"))
    with page.expect_response(lambda r: r.request.method == "POST") as again:
        page.get_by_test_id("confirm-button").click()
    assert again.value.status == 401  # logged out: refused again
    assert fresh.board() == {"dev": 3, "staging": 1}


def test_logging_in_after_a_refused_change_leads_back_to_the_confirm_page(
    page: Page, fresh: Fresh
) -> None:
    server = fresh.serve(token="s3cret")
    open_promote_check(page, server.origin, 1, "staging")
    check_page = page.url
    page.get_by_test_id("confirm-button").click()
    page.wait_for_load_state()
    expect(page.get_by_test_id("error-message")).to_have_attribute("data-status", "401")
    page.get_by_test_id("error-login-link").click()
    page.wait_for_url(re.compile(r"/login\?next="))
    page.get_by_test_id("login-token").fill("s3cret")
    page.get_by_test_id("login-button").click()
    page.wait_for_load_state()
    assert page.url == check_page
    confirm(page, "after logging in")
    assert fresh.board() == {"dev": 3, "staging": 1}

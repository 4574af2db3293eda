"""The attacks as a real browser makes them: a page whose name was pointed at this machine
(DNS rebinding, simulated by Chromium's host-resolver rules), and a page of another site
that posts a form to the dashboard while the victim has a session there. Both are
refused, and the store shows nothing was promoted."""

from __future__ import annotations

from tests.ui.conftest import MODEL, Fresh
from tests.ui.test_guard import PROMOTE, assert_not_promoted
from tests.ui_browser.conftest import EVIL_HOST, require_playwright

require_playwright()

from playwright.sync_api import Page, Route  # noqa: E402


def attack_page(action: str) -> str:
    """What the attacker serves: a form that promotes version 1 to staging."""
    return f"""<!doctype html><html><body>
<form method="post" action="{action}">
  <input type="hidden" name="version" value="1"><input type="hidden" name="to" value="staging">
  <button type="submit" id="go">win a prize</button>
</form></body></html>"""


def serve_attack(page: Page, url: str, action: str) -> None:
    def fulfil(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=attack_page(action))

    page.route(url, fulfil)


def test_a_rebinding_page_cannot_read_or_promote(page: Page, fresh: Fresh) -> None:
    server = fresh.serve()
    evil = f"http://{EVIL_HOST}:{server.port}"
    # The victim uses the dashboard: a session, and the page's form token.
    page.goto(server.origin + f"{PROMOTE}?version=1&to=staging")

    read = page.goto(evil + f"/models/{MODEL}")  # the same server, reached by the evil name
    assert read is not None and read.status == 400
    assert "not reached as" in page.content()

    serve_attack(page, evil + "/attack", PROMOTE)  # same origin as the evil name
    page.goto(evil + "/attack")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#go")
    request = posted.value.request
    assert request.headers["origin"] == evil  # what a same-origin page sends
    assert posted.value.status == 400
    assert_not_promoted(fresh)


def test_a_form_on_another_site_cannot_promote(page: Page, fresh: Fresh) -> None:
    server = fresh.serve()
    page.goto(server.origin + f"{PROMOTE}?version=1&to=staging")  # the victim's session
    serve_attack(page, "http://attacker.example/page", server.origin + PROMOTE)
    page.goto("http://attacker.example/page")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#go")
    assert posted.value.status == 403
    assert_not_promoted(fresh)

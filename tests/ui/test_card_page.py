"""The model card page of the dashboard, over real HTTP: linked from the model's page and each
version, the same Markdown as ``modelrail card`` rendered with no HTML from the texts it is
made of, sections written through a form with the session's CSRF token, and only by those
whose roles allow registering versions."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrail.portability.card_markdown import card_markdown
from tests.ui.conftest import MODEL, Fresh
from tests.ui.test_ui_identity import TeamUi, refused, sign_in, team_project

CARD = f"/models/{MODEL}/versions/2/card"


@pytest.fixture
def team(tmp_path: Path) -> Iterator[TeamUi]:
    yield from team_project(tmp_path)


def test_card_page_is_linked_and_shows_the_cards_markdown(fresh: Fresh) -> None:
    ui = fresh.serve()
    model_page = ui.get(f"/models/{MODEL}")
    assert model_page.count("version-card-link") == 3
    assert (
        f'href="/models/{MODEL}/versions/3/card" data-testid="model-card-link"' in model_page.text
    )

    reply = ui.get(CARD)
    assert reply.status == 200, reply.text[-600:]
    assert f"<h1>Model card: {MODEL} version 2</h1>" in reply.text
    for heading in ("Signature", "Data", "Promotions and gates", "Predictor", "Code"):
        assert f"<h2>{heading}</h2>" in reply.text
    assert "<td>f0</td>\n<td>float64</td>\n<td>refused</td>" in reply.text
    with fresh.seeded.client() as client:
        markdown = card_markdown(client.model_card(f"{MODEL}:2"))
    shown = re.search(r'<pre data-testid="card-markdown">(.*?)</pre>', reply.text, re.DOTALL)
    assert shown is not None and html.unescape(shown.group(1)) == markdown

    assert ui.get(f"/models/{MODEL}/versions/9/card").status == 404
    assert ui.get("/models/nobody/versions/1/card").status == 404


def test_sections_are_written_through_the_form_and_never_become_markup(fresh: Fresh) -> None:
    ui = fresh.serve()
    visitor = ui.visitor()
    page = visitor.get(CARD)
    assert page.count("card-edit-form") == 1
    hostile = "<script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror=alert(3)>"
    form = {"section": "<b>Intended use</b>", "scope": "version", "text": hostile}
    reply = visitor.post(CARD, form)
    assert reply.status == 303, reply.text[-600:]
    assert reply.headers["location"].startswith(f"{CARD}?saved=")
    again = visitor.post(CARD, {**form, "text": "Second **edit**.\n\n" + hostile})
    assert again.status == 303

    page = visitor.get(reply.headers["location"])
    card = page.text.split('data-testid="model-card">', 1)[1].split("</article>", 1)[0]
    assert "<h2>&lt;b&gt;Intended use&lt;/b&gt;</h2>" in card
    assert "<p>Second <strong>edit</strong>.</p>" in card
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    assert not re.search(r"<(script|img|b>)|href=\"javascript", page.text)
    assert page.count("card-history-row") == 2  # both edits kept
    with fresh.seeded.client() as client:
        (section,) = client.card_sections(MODEL, 2)
        assert section.author == "alice" and section.text.startswith("Second **edit**.")
        assert client.card_sections(MODEL, 1) == []  # written for version 2 only

    refused(ui.post(CARD, {"section": "x", "text": "y"}), 403, "")  # no CSRF token
    refused(visitor.post(CARD, {"section": " ", "text": "y"}), 400, "needs a title")
    refused(visitor.post(CARD, {"section": "x", "scope": "all", "text": "y"}), 400, "scope")


def test_only_roles_that_register_versions_may_write_sections(team: TeamUi) -> None:
    ui = team.serve()
    viewer = sign_in(ui, team, "vic", CARD)
    page = viewer.get(CARD)
    assert page.status == 200 and page.count("card-edit-form") == 0
    refused(viewer.post(CARD, {"section": "x", "text": "y"}), 403, "log runs or register versions")
    approver = sign_in(ui, team, "ann", CARD)
    refused(approver.post(CARD, {"section": "x", "text": "y"}), 403, "log runs or register")

    member = sign_in(ui, team, "mia", CARD)
    assert member.get(CARD).count("card-edit-form") == 1
    reply = member.post(CARD, {"section": "Limitations", "scope": "model", "text": "Toy data."})
    assert reply.status == 303, reply.text[-600:]
    with team.fresh.seeded.client() as client:
        (edit,) = client.card_section_history(MODEL)
    assert (edit.author, edit.version, edit.text) == ("mia", None, "Toy data.")
    assert "Toy data." in viewer.get(f"/models/{MODEL}/versions/1/card").text

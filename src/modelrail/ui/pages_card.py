"""A model version's card (``/models/{name}/versions/{version}/card``), and writing the
owner's sections of it from the dashboard.

The page shows the Markdown ``modelrail card`` prints (``portability.card_markdown``, the one
generator), rendered to HTML here by markdown-it with raw HTML turned off: every ``<`` in a
section's text or in a record is shown as text, and links with unsafe schemes
(``javascript:``, ``data:``...) are refused. The section form is offered to viewers who may
register versions (``log``); a POST checks that again, carries the session's CSRF token
(``app``) and calls the same ``Client.edit_card_section`` as the command line, as the viewer.
"""

from __future__ import annotations

import functools

from markdown_it import MarkdownIt
from starlette.responses import RedirectResponse, Response

from modelrail.errors import InvalidInputError
from modelrail.portability.card_markdown import SUGGESTED_SECTIONS, card_markdown
from modelrail.ui.state import Page


@functools.cache
def _renderer() -> MarkdownIt:
    # CommonMark with tables, and without raw HTML: a section's markup stays text.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def card_to_html(markdown: str) -> str:
    """The card's Markdown as HTML that holds no markup from the texts it was made of."""
    return str(_renderer().render(markdown))


def card_page(page: Page) -> Response:
    name = page.path_param("name")
    version = int(page.path_param("version"))
    client = page.client
    card = client.model_card(f"{name}:{version}")
    markdown = card_markdown(card)
    edits = [
        e for e in client.card_section_history(name) if e.version is None or e.version == version
    ]
    titles = [s.title for s in card.sections]
    titles += [t for t in SUGGESTED_SECTIONS if t.casefold() not in {x.casefold() for x in titles}]
    return page.render(
        "card.html",
        title=f"Model card: {card.reference}",
        name=name,
        version=version,
        card=card,
        card_html=card_to_html(markdown),
        markdown=markdown,
        edits=list(reversed(edits)),
        titles=titles,
        chosen=page.param("section") or (titles[0] if titles else ""),
        may_edit=page.viewer.may("log"),
        saved=page.param("saved"),
    )


def edit_section(page: Page) -> Response:
    name = page.path_param("name")
    version = int(page.path_param("version"))
    page.viewer.require("log")
    scope = page.field("scope") or "model"
    if scope not in ("model", "version"):
        raise InvalidInputError(f"scope must be 'model' or 'version', not {scope!r}")
    target = name if scope == "model" else f"{name}:{version}"
    text = (page.form.get("text") or [""])[0]  # kept as typed: Markdown minds its spaces
    written = page.client.edit_card_section(target, page.field("section"), text, actor=page.actor)
    return RedirectResponse(
        f"/models/{name}/versions/{version}/card?saved={written.id}", status_code=303
    )

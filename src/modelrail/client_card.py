"""Model cards through ``Client``: a version's card, and the owner's free-text sections.

``CardMethods`` is mixed into ``Client`` (and, with its section methods over HTTP, into
``RemoteClient``). A card is generated from the records every time it is asked for; only the
free-text sections (intended use, limitations, ...) are written by people, and every edit
of one is kept.

Where a section is stored: editing ``churn`` writes it for every version of the model;
editing ``churn:7`` writes it for version 7 only, where it overrides the model's section of
the same title (emptying it lets the model's section show again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelrail.errors import InvalidInputError, InvalidReferenceError
from modelrail.refs import Ref
from modelrail.store.card_repo import CardSectionRepository, section_key

if TYPE_CHECKING:
    from modelrail.entities import CardSection
    from modelrail.portability.card import CardReads, ModelCard
    from modelrail.store.db import Database

MAX_TITLE = 128
MAX_TEXT = 100_000


class CardReading:
    """A version's card, read through the client's public reads (``Client`` and
    ``RemoteClient`` both have them)."""

    def model_card(self, reference: str | Ref) -> ModelCard:
        """The card of the version ``reference`` names (``churn:7``, ``churn@prod``, or
        ``churn`` for the latest), gathered from its records (see ``portability.card``)."""
        from modelrail.portability.card import build_card

        reads: CardReads = self  # type: ignore[assignment]  # Client offers every read
        return build_card(reads, reference)


class CardMethods(CardReading):
    """Model cards: the card half of ``Client``, its sections in the store."""

    db: Database
    user: str

    def card_sections(self, model: str, version: int | None = None) -> list[CardSection]:
        """The free-text sections a card of ``model`` version ``version`` shows (None: the
        model's own), each the newest edit of its title."""
        return CardSectionRepository(self.db).current(model, version)

    def card_section_history(self, model: str, section: str | None = None) -> list[CardSection]:
        """Every edit of the sections of ``model`` (of section ``section`` only, when
        given), for every version and the model as a whole, oldest first."""
        edits = CardSectionRepository(self.db).history(model)
        if section is None:
            return edits
        key = section_key(section)
        return [edit for edit in edits if section_key(edit.title) == key]

    def edit_card_section(
        self, target: str | Ref, section: str, text: str, *, actor: str | None = None
    ) -> CardSection:
        """Write ``text`` (Markdown) as section ``section`` of the card of ``target``:
        ``churn`` for every version, ``churn:7`` for version 7 only. An empty text removes
        the section; the earlier edits stay in its history."""
        model, version = card_target(target)
        title = checked_title(section)
        body = checked_text(text)
        return CardSectionRepository(self.db).append(
            model, version, title, body, actor or self.user
        )


def card_target(target: str | Ref) -> tuple[str, int | None]:
    """The model and version (None: every version) a section edit is for."""
    ref = target if isinstance(target, Ref) else Ref.parse(str(target))
    if ref.environment is not None:
        raise InvalidReferenceError(
            f"a card section is written for a model ({ref.name}) or one version "
            f"({ref.name}:VERSION), not for what {ref.environment} holds at the moment"
        )
    return ref.name, ref.version


def checked_title(section: str) -> str:
    title = " ".join(str(section).split())
    if not title:
        raise InvalidInputError("{section} needs a title, e.g. 'Intended use'", params=("section",))
    if len(title) > MAX_TITLE:
        raise InvalidInputError(
            f"{{section}} titles are at most {MAX_TITLE} characters, not {len(title)}",
            params=("section",),
        )
    if any(not ch.isprintable() for ch in title):
        raise InvalidInputError(
            "{section} titles may not hold control characters", params=("section",)
        )
    return title


def checked_text(text: str) -> str:
    if not isinstance(text, str):
        raise InvalidInputError("{text} must be text", params=("text",))
    body = text.replace("\r\n", "\n").strip("\n")
    if len(body) > MAX_TEXT:
        raise InvalidInputError(
            f"{{text}} of a card section is at most {MAX_TEXT:,} characters, not {len(body):,}",
            params=("text",),
        )
    if "\x00" in body:
        raise InvalidInputError("{text} may not hold NUL characters", params=("text",))
    return body

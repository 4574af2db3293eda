"""The free-text sections of model cards: every edit kept, the newest of each shown.

A section belongs to a model (``version`` None: it holds for every version) or to one of its
versions (it overrides the model's section of the same title for that version). Titles are
matched ignoring case and runs of spaces, so "Intended use" and "intended  use" are one
section; the newest edit's spelling is shown. The table is append-only: an edit adds a row,
and an empty text removes the section from the card while its history stays.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from modelrail.entities import CardSection
from modelrail.errors import ModelNotFoundError, ModelVersionNotFoundError
from modelrail.store import tables as t
from modelrail.store.db import Database


def section_key(title: str) -> str:
    """What makes two titles the same section."""
    return " ".join(title.split()).casefold()


class CardSectionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def history(self, model: str) -> list[CardSection]:
        """Every edit of every section of ``model`` (model-wide and per version), oldest
        first; ``ModelNotFoundError`` for a model the store does not have."""
        s, m = t.model_card_sections, t.models
        query = (
            select(s, m.c.name.label("model_name"))
            .join(m, m.c.id == s.c.model_id)
            .where(m.c.name == model)
            .order_by(s.c.id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
            if not rows and _model_id(conn, model) is None:
                raise ModelNotFoundError(f"no model named {model!r}")
        return [_section(row) for row in rows]

    def current(self, model: str, version: int | None) -> list[CardSection]:
        """The sections a card of ``model`` version ``version`` shows (None: the model's
        own), in the order they were first written: per title the version's newest edit,
        else the model's; a section whose newest edit is empty is left out (an emptied
        version edit lets the model's section show again)."""
        newest: dict[tuple[str, bool], CardSection] = {}
        first_seen: dict[str, int] = {}
        for edit in self.history(model):  # oldest first: later edits replace earlier ones
            if edit.version is not None and edit.version != version:
                continue
            key = section_key(edit.title)
            first_seen.setdefault(key, edit.id)
            newest[(key, edit.version is None)] = edit
        shown = []
        for key in sorted(first_seen, key=first_seen.__getitem__):
            own, shared = newest.get((key, False)), newest.get((key, True))
            chosen = own if own is not None and own.text.strip() else shared
            if chosen is not None and chosen.text.strip():
                shown.append(chosen)
        return shown

    def append(
        self, model: str, version: int | None, title: str, text: str, author: str
    ) -> CardSection:
        """Add an edit of section ``title``; the model (and version, if given) must exist."""
        with self.db.write() as conn:
            model_id = _model_id(conn, model)
            if model_id is None:
                raise ModelNotFoundError(f"no model named {model!r}")
            if version is not None:
                v = t.model_versions
                found = conn.execute(
                    select(v.c.id).where(v.c.model_id == model_id, v.c.version == version)
                ).first()
                if found is None:
                    raise ModelVersionNotFoundError(f"model {model!r} has no version {version}")
            row = {
                "model_id": model_id,
                "version": version,
                "section": title,
                "text": text,
                "author": author,
                "created_at": time.time(),
            }
            new_id = conn.execute(t.model_card_sections.insert().values(**row)).inserted_primary_key
        assert new_id is not None
        return _section({**row, "id": new_id[0], "model_name": model})


def _model_id(conn: Any, model: str) -> int | None:
    found = conn.execute(select(t.models.c.id).where(t.models.c.name == model)).scalar()
    return None if found is None else int(found)


def _section(row: Mapping[Any, Any]) -> CardSection:
    return CardSection(
        id=int(row["id"]),
        model=str(row["model_name"]),
        version=None if row["version"] is None else int(row["version"]),
        title=str(row["section"]),
        text=str(row["text"]),
        author=str(row["author"]),
        created_at=float(row["created_at"]),
    )

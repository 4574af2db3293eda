"""Model cards through the team server, in front of SQLite and PostgreSQL: ``RemoteClient``
builds the same card as a client of the store, a member writes sections as themselves, a
viewer or an approver may read but not write, and bad input is a 4xx naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.errors import (
    InvalidInputError,
    InvalidReferenceError,
    ModelVersionNotFoundError,
    PermissionDeniedError,
)
from modelrail.portability.card_markdown import card_markdown
from modelrail.remote.client import RemoteClient
from tests.portability.test_card import MODEL, train
from tests.server.conftest import HOST, Team, any_team, team

__all__ = ["any_team", "team"]


def remote(team: Team, name: str, tmp_path: Path) -> Client:
    laptop = tmp_path / f"laptop-{name}"
    laptop.mkdir(exist_ok=True)
    settings = load_settings(cwd=laptop, environ={}, create=False)
    made = RemoteClient(f"http://{HOST}:{team.port}", team.tokens[name], settings=settings)
    return cast(Client, made)


def test_a_card_through_the_server_is_the_card_of_the_store(any_team: Team, tmp_path: Path) -> None:
    mia, vic, ann = (remote(any_team, n, tmp_path) for n in ("mia", "vic", "ann"))
    try:
        assert train(mia) == 1
        mia.promote(f"{MODEL}:1", "staging", reason="try it")
        written = mia.edit_card_section(MODEL, "Intended use", "Calls to *likely* leavers.")
        assert (written.author, written.version) == ("mia", None)
        mia.edit_card_section(f"{MODEL}:1", "Intended use", "Version 1: pilot region only.")

        through_server = vic.model_card(f"{MODEL}@staging")
        local = any_team.client.model_card(f"{MODEL}:1")
        assert through_server.to_json() == local.to_json()
        assert card_markdown(through_server) == card_markdown(local)
        (section,) = through_server.sections
        assert (section.text, section.author) == ("Version 1: pilot region only.", "mia")
        assert [s.text for s in vic.card_sections(MODEL)] == ["Calls to *likely* leavers."]
        history = vic.card_section_history(MODEL, "intended use")
        assert [(e.version, e.author) for e in history] == [(None, "mia"), (1, "mia")]

        for reader in (vic, ann):  # reading is everyone's; writing is the registering role's
            with pytest.raises(PermissionDeniedError, match="log runs or register versions"):
                reader.edit_card_section(MODEL, "Limitations", "none")
        with pytest.raises(ModelVersionNotFoundError, match="no version 5"):
            mia.edit_card_section(f"{MODEL}:5", "Limitations", "x")
        with pytest.raises(InvalidReferenceError):
            mia.edit_card_section(f"{MODEL}@prod", "Limitations", "x")
        with pytest.raises(InvalidInputError, match="needs a title"):
            mia.edit_card_section(MODEL, " ", "x")
        with pytest.raises(ModelVersionNotFoundError):
            vic.model_card(f"{MODEL}:7")
        assert len(any_team.client.card_section_history(MODEL)) == 2
    finally:
        for made in (mia, vic, ann):
            made.close()


def test_card_routes_refuse_bad_requests_with_4xx(team: Team, tmp_path: Path) -> None:
    mia = remote(team, "mia", tmp_path)
    try:
        train(mia)
    finally:
        mia.close()
    api = "/api/v1/cards"
    assert team.get(f"{api}/{MODEL}/sections").status == 401  # nobody signed in
    reply = team.get(f"{api}/{MODEL}/sections?version=x", "vic")
    assert reply.status == 422 and reply.json()["field"] == "version", reply.json()
    assert team.get(f"{api}/nobody/history", "vic").status == 404
    reply = team.post(f"{api}/{MODEL}/sections", "mia", {"section": "Use", "txt": "x"})
    assert reply.status == 422 and "unknown field 'txt'" in reply.body.decode()
    reply = team.post(f"{api}/{MODEL}/sections", "mia", {"section": "Use"})
    assert reply.status == 422 and reply.json()["field"] == "text"
    reply = team.post(f"{api}/{MODEL}/sections", "mia", {"section": "Use", "text": 3})
    assert reply.status == 422
    reply = team.post(f"{api}/{MODEL}%3A1/sections", "mia", {"section": "a\nb" * 100, "text": "x"})
    assert reply.status == 400 and "at most 128" in reply.body.decode()
    reply = team.post(f"{api}/{MODEL}%3A1/sections", "mia", {"section": "Use", "text": "ok"})
    assert reply.status == 200 and reply.json()["version"] == 1
    assert team.get(f"{api}/{MODEL}/sections?version=1", "vic").json()[0]["text"] == "ok"

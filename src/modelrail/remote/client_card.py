"""Model cards through ``RemoteClient``: the card is built here, by the same
``portability.card`` as on a local store, from the server's version, run, history and board
routes and its card-section routes (``server/card_routes``). Mixed into ``RemoteClient`` only.

A section edit is made by the signed-in user, who needs the role that registers versions
(``log``); ``actor`` is not sent (the server records who signed in)."""

from __future__ import annotations

from modelrail.client_card import CardReading
from modelrail.entities import CardSection
from modelrail.refs import Ref
from modelrail.remote.connection import ServerConnection, segment
from modelrail.remote.decode import decode, decode_list


class RemoteCardMethods(CardReading):
    connection: ServerConnection

    def card_sections(self, model: str, version: int | None = None) -> list[CardSection]:
        query = None if version is None else {"version": version}
        found = self.connection.get(f"/cards/{segment(model)}/sections", query)
        return decode_list(CardSection, found, "card sections")

    def card_section_history(self, model: str, section: str | None = None) -> list[CardSection]:
        found = self.connection.get(f"/cards/{segment(model)}/history", {"section": section})
        return decode_list(CardSection, found, "card sections")

    def edit_card_section(
        self, target: str | Ref, section: str, text: str, *, actor: str | None = None
    ) -> CardSection:
        name = str(target)
        Ref.parse(name)  # a malformed reference is refused here, as a local client does
        body = {"section": section, "text": text}
        found = self.connection.post(f"/cards/{segment(name)}/sections", body)
        return decode(CardSection, found, "card section")

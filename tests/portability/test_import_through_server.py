"""Bundles through a team server: any reader exports through it; only an admin imports, as
the history then says; what goes in comes out the same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import PermissionDeniedError
from modelrail.remote.client import RemoteClient
from tests.portability.exchange_helpers import MODEL, open_as, promote_through, records_of, train
from tests.server.conftest import HOST, Team, start_team


@pytest.fixture
def any_team(store_url: str, tmp_path: Path) -> Iterator[Team]:
    """The team server in front of SQLite, then of PostgreSQL."""
    yield from start_team(store_url, tmp_path / "server")


def local(root: Path, user: str) -> Client:
    root.mkdir()
    init_project(root)
    return open_as(f"sqlite:///{root / '.modelrail' / 'modelrail.db'}", root, user)


def signed_in(team: Team, user: str, root: Path) -> Client:
    settings = load_settings(cwd=root, environ={}, create=False)
    made = RemoteClient(f"http://{HOST}:{team.port}", team.tokens[user], settings=settings)
    return made  # type: ignore[return-value]  # offers Client's methods it serves


def test_an_admin_imports_through_the_server_and_a_reader_exports_back(
    any_team: Team, tmp_path: Path
) -> None:
    with local(tmp_path / "laptop", "bob") as bob:
        train(bob, 0.81)
        laptop_url = f"sqlite:///{tmp_path / 'laptop' / '.modelrail' / 'modelrail.db'}"
        with open_as(laptop_url, tmp_path / "laptop", "carol") as approver:
            promote_through(bob, approver, 1)
        bundle = bob.export_bundle([MODEL], tmp_path / "churn.mrbundle").path
        source = records_of(bob)
        laptop_id = bob.store_id()

    mia, ada, vic = (signed_in(any_team, name, tmp_path) for name in ("mia", "ada", "vic"))
    try:
        with pytest.raises(PermissionDeniedError) as refused:
            mia.import_bundle(bundle)
        assert refused.value.exit_code == 12 and any_team.client.list_models() == []

        summary = ada.import_bundle(bundle)
        assert summary.report.versions_added == ("churn:1",)
        assert records_of(any_team.client) == source
        ((action, actor),) = [(e.action, e.actor) for e in vic.history(MODEL)]
        assert (action, actor) == ("imported", "ada")
        assert [e.origin for e in vic.imported_history(MODEL)] == [f"modelrail:{laptop_id}"] * 4
        assert not ada.import_bundle(bundle).report.changed
        assert [i.imported_by for i in vic.imports()] == ["ada"]

        back = vic.export_bundle([f"{MODEL}:1"], tmp_path / "back.mrbundle").path
    finally:
        for client in (mia, ada, vic):
            client.close()
    with local(tmp_path / "offline", "dave") as offline:
        offline.import_bundle(back)
        assert records_of(offline) == source
        origins = {e.origin for e in offline.imported_history(MODEL)}
        assert origins == {f"modelrail:{laptop_id}", f"modelrail:{any_team.client.store_id()}"}

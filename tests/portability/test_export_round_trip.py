"""Versions travel between stores whole: SQLite -> PostgreSQL -> a fresh SQLite, field by
field the same, with the source's history kept apart and every import marked."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.config import init_project
from modelrail.errors import ArtifactIntegrityError, InvalidInputError
from modelrail.portability.bundle_format import MANIFEST
from tests.conftest import store_url_of
from tests.portability.exchange_helpers import (
    MODEL,
    frame,
    open_as,
    promote_through,
    records_of,
    train,
)


@contextlib.contextmanager
def store(kind: str, root: Path, user: str) -> Iterator[Client]:
    root.mkdir()
    init_project(root)
    with contextlib.contextmanager(store_url_of)(kind, root) as url:
        client = open_as(url, root, user)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def laptop(tmp_path: Path) -> Iterator[Client]:
    with store("sqlite", tmp_path / "laptop", "bob") as bob:
        carol = open_as(
            str(bob.db.url.render_as_string(hide_password=False)), tmp_path / "laptop", "carol"
        )
        try:
            assert train(bob, 0.81) == 1
            assert train(bob, 0.84, seed=1) == 2
            bob.promote(f"{MODEL}:1", "staging")
            promote_through(bob, carol, 2)
            bob.rollback(MODEL, "staging", reason="drill")
        finally:
            carol.close()
        yield bob


@pytest.mark.postgres
def test_versions_round_trip_sqlite_postgres_sqlite_field_by_field(
    laptop: Client, tmp_path: Path
) -> None:
    first = tmp_path / "churn.mrbundle"
    exported = laptop.export_bundle([MODEL], first)
    assert exported.versions == ("churn:1", "churn:2") and exported.runs == 2
    source_versions, source_runs = records_of(laptop)
    source_events = laptop.history(MODEL)

    with store("postgres", tmp_path / "team", "alice") as team:
        summary = team.import_bundle(first)
        assert summary.report.versions_added == ("churn:1", "churn:2")
        assert records_of(team) == (source_versions, source_runs)
        # What each version is monitored against travels with it.
        profiles = [laptop.reference_profile(f"{MODEL}:{n}") for n in (1, 2)]
        assert None not in profiles
        assert [team.reference_profile(f"{MODEL}:{n}") for n in (1, 2)] == profiles
        # This store's history says only that alice imported them; nothing is held here.
        marks = [(e.action, e.environment, e.to_version, e.actor) for e in team.history(MODEL)]
        assert marks == [("imported", "-", 1, "alice"), ("imported", "-", 2, "alice")]
        assert team.board() == []
        kept = team.imported_history(MODEL)
        origin = f"modelrail:{laptop.store_id()}"
        assert [(e.origin, e.origin_id, e.action, e.to_version, e.actor) for e in kept] == [
            (origin, e.id, e.action, e.to_version, e.actor) for e in source_events
        ]
        # A version imported is one like any other: it loads, and promotes by this store's rules.
        features = frame()[["calls"]].astype("float64")
        expected = laptop.load_model("churn:2").predict(features)
        assert list(team.load_model("churn:2").predict(features)) == list(expected)
        run_id = team.get_model_version("churn:1").run_id
        assert run_id is not None
        assert team.run_artifact(run_id, "notes.txt") == b"trained on 60 rows"
        team.promote("churn:2", "dev")
        # The next registration takes the number after the imported ones.
        assert train(team, 0.9, seed=2) == 3

        second = tmp_path / "again.mrbundle"
        team.export_bundle(["churn:1", "churn:2"], second)

    with store("sqlite", tmp_path / "offline", "dave") as offline:
        offline.import_bundle(second)
        versions, runs = records_of(offline)
        assert (versions, runs) == (source_versions, source_runs)
        assert [offline.reference_profile(f"{MODEL}:{n}") for n in (1, 2)] == profiles
        # The laptop's promotions, and the team store's import and promotion, all kept
        # as imported history, each under the store where it happened.
        kept = offline.imported_history(MODEL)
        assert [(e.action, e.actor) for e in kept if e.origin == origin] == [
            (e.action, e.actor) for e in source_events
        ]
        assert [(e.action, e.actor) for e in kept if e.origin != origin] == [
            ("imported", "alice"),
            ("imported", "alice"),
            ("promote", "alice"),
            ("auto", "alice"),  # version 3 took version 2's place in dev
        ]


def test_importing_twice_changes_nothing_and_says_so(laptop: Client, tmp_path: Path) -> None:
    bundle = tmp_path / "churn-v2.mrbundle"
    laptop.export_bundle(["churn:2"], bundle)
    with store("sqlite", tmp_path / "other", "erin") as other:
        first = other.import_bundle(bundle)
        again = other.import_bundle(bundle)
        assert first.report.changed and not again.report.changed
        assert again.report.versions_present == ("churn:2",)
        assert len(other.imports()) == 1 and len(other.history(MODEL)) == 1
        # Only the version asked for, its one run and its history travel.
        assert [v.version for v in other.list_versions(MODEL)] == [2]
        assert other.tracker().total == 1


def test_a_bundle_holds_only_checked_members_named_in_its_manifest(
    laptop: Client, tmp_path: Path
) -> None:
    bundle = tmp_path / "all.mrbundle"
    summary = laptop.export_bundle([], bundle, everything=True)
    assert summary.versions == ("churn:1", "churn:2")
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
    assert MANIFEST in names
    assert {n for n in names if n.startswith("records/versions/")} == {
        "records/versions/churn/1.json",
        "records/versions/churn/2.json",
    }
    assert not list(tmp_path.glob("*.partial"))


def test_export_without_a_choice_or_into_a_missing_folder_is_refused(
    laptop: Client, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInputError, match="everything"):
        laptop.export_bundle([], tmp_path / "x.mrbundle")
    with pytest.raises(InvalidInputError, match="does not exist"):
        laptop.export_bundle([MODEL], tmp_path / "nowhere" / "x.mrbundle")


def test_an_export_that_fails_leaves_no_file_behind(laptop: Client, tmp_path: Path) -> None:
    version = laptop.get_model_version("churn:2")
    laptop.artifacts.path_for(version.artifact_sha256).unlink()  # lost from the artifact store
    target = tmp_path / "churn.mrbundle"
    with pytest.raises(ArtifactIntegrityError, match=r"churn:2: its file .* is missing"):
        laptop.export_bundle([MODEL], target)
    assert not target.exists() and not list(tmp_path.glob(".churn.mrbundle.*"))

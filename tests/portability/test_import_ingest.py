"""The record layer: ``ingest`` writes runs and versions from elsewhere with their own ids,
numbers, labels, times and authors, once, in one transaction, refusing conflicts."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest

from modelrail.client import Client
from modelrail.entities import ArtifactRecord, MetricPoint
from modelrail.errors import ImportConflictError, InvalidInputError
from modelrail.portability.ingest import ingest
from modelrail.portability.records import (
    ComponentRecord,
    HistoryRecord,
    ImportSource,
    RunRecord,
    VersionRecord,
)
from modelrail.store.import_repo import ImportRepository

SOURCE = ImportSource("bundle", "churn.mrbundle", "sqlite:////laptop/.modelrail/modelrail.db")
SHA = "ab" * 32


def a_run(**changes: object) -> RunRecord:
    run = RunRecord(
        id=uuid.uuid4().hex,
        experiment="churn",
        experiment_created_at=1_600_000_000.0,
        name="bright-otter",
        status="finished",
        user="bob",
        started_at=1_700_000_000.25,
        ended_at=1_700_000_060.5,
        architecture="Beta",
        provenance={"git": {"commit": "a1b2c3d", "dirty": False}},
        params={"C": 0.5, "layers": [3, 4]},
        tags={"team": "growth"},
        metrics=(
            MetricPoint("loss", 0.9, 0, 1_700_000_001.0),
            MetricPoint("loss", 0.4, 1, 1_700_000_002.0),
            MetricPoint("accuracy", 0.91, 1, 1_700_000_002.5),
        ),
        components=(
            ComponentRecord(
                role="data:train",
                kind="data",
                lineage="data:churn/train",
                fingerprint="f1" * 32,
                shape_fingerprint="s1" * 32,
                details={"rows": 1204, "columns": {"tenure": "float64"}},
                major=1,
                minor=2,
                created_at=1_650_000_000.0,
            ),
        ),
        artifacts=(ArtifactRecord("report.txt", SHA, 12),),
    )
    return dataclasses.replace(run, **changes)  # type: ignore[arg-type]


def a_version(run: RunRecord, **changes: object) -> VersionRecord:
    version = VersionRecord(
        model="churn",
        version=7,
        run_id=run.id,
        flavor="sklearn",
        artifact_sha256="cd" * 32,
        artifact_size=2048,
        signature={"inputs": [{"name": "tenure", "dtype": "float64"}], "outputs": []},
        input_example=[{"tenure": 3.0}],
        flavor_details={"class": "LogisticRegression"},
        created_at=1_700_000_070.0,
        created_by="bob",
        description="first",
    )
    return dataclasses.replace(version, **changes)  # type: ignore[arg-type]


def promoted(version: VersionRecord) -> HistoryRecord:
    return HistoryRecord(
        origin=SOURCE.store,
        origin_id=41,
        model=version.model,
        environment="prod",
        action="approve",
        from_version=6,
        to_version=version.version,
        actor="carol",
        reason="ship it",
        created_at=1_700_001_000.0,
        gates=({"gate": "min_accuracy", "passed": True, "detail": "0.91 >= 0.9"},),
    )


@pytest.fixture
def repo(client: Client) -> Iterator[ImportRepository]:
    yield ImportRepository(client.db)


def test_ingest_keeps_ids_numbers_labels_times_and_authors(
    client: Client, repo: ImportRepository
) -> None:
    run = a_run()
    version = a_version(run)
    report = ingest(
        repo,
        runs=[run],
        versions=[version],
        history=[promoted(version)],
        source=SOURCE,
        actor="alice",
        now=1_800_000_000.0,
    )
    assert report.runs_added == (run.id,) and report.versions_added == ("churn:7",)
    assert report.events_added == 1 and report.relabelled == () and report.import_id is not None

    stored = client.get_run(run.id)
    assert (stored.user, stored.started_at, stored.ended_at) == (
        "bob",
        run.started_at,
        run.ended_at,
    )
    assert stored.params == {"C": 0.5, "layers": [3, 4]} and stored.tags == {"team": "growth"}
    assert stored.metrics == {"loss": 0.4, "accuracy": 0.91}
    assert client.metric_history(run.id, "loss") == list(run.metrics[:2])
    assert stored.components["data:train"].label == "1.2"
    assert stored.artifacts == run.artifacts
    registered = client.get_model_version("churn:7")
    assert (registered.created_by, registered.created_at, registered.run_id) == (
        "bob",
        version.created_at,
        run.id,
    )
    # Here, the import is the version's only event; it places it in no environment.
    (event,) = client.history("churn")
    assert (event.action, event.environment, event.to_version, event.actor) == (
        "imported",
        "-",
        7,
        "alice",
    )
    assert "churn.mrbundle" in event.reason and event.created_at == 1_800_000_000.0
    assert client.board() == []
    (kept,) = repo.imported_events("churn")
    assert kept.record == promoted(version) and kept.import_id == report.import_id


def test_ingest_twice_changes_nothing(client: Client, repo: ImportRepository) -> None:
    run = a_run()
    version = a_version(run)
    first = ingest(
        repo,
        runs=[run],
        versions=[version],
        history=[promoted(version)],
        source=SOURCE,
        actor="alice",
    )
    again = ingest(
        repo,
        runs=[run],
        versions=[version],
        history=[promoted(version)],
        source=SOURCE,
        actor="alice",
    )

    assert first.changed and not again.changed and again.import_id is None
    assert again.runs_present == (run.id,) and again.versions_present == ("churn:7",)
    assert len(repo.imports()) == 1 and len(client.history("churn")) == 1
    assert len(repo.imported_events()) == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [({"params": {"C": 0.6, "layers": [3, 4]}}, "params"), ({"user": "eve"}, "user")],
)
def test_a_run_id_with_other_content_is_refused_and_nothing_is_written(
    client: Client, repo: ImportRepository, change: dict[str, object], named: str
) -> None:
    run = a_run()
    ingest(repo, runs=[run], versions=[], source=SOURCE, actor="alice")
    newcomer = a_run()

    with pytest.raises(ImportConflictError, match=rf"run {run.id} .* different {named}"):
        # The conflict comes after a new run was written in the same transaction.
        ingest(
            repo,
            runs=[newcomer, dataclasses.replace(run, **change)],  # type: ignore[arg-type]
            versions=[],
            source=SOURCE,
            actor="alice",
        )
    assert client.tracker().total == 1
    assert len(repo.imports()) == 1


def test_a_version_number_with_other_content_is_refused(
    client: Client, repo: ImportRepository
) -> None:
    run = a_run()
    ingest(repo, runs=[run], versions=[a_version(run)], source=SOURCE, actor="alice")
    other = a_version(run, artifact_sha256="ef" * 32)

    with pytest.raises(ImportConflictError, match=r"'churn' already has a version 7 .* model file"):
        ingest(repo, runs=[run], versions=[other], source=SOURCE, actor="alice")
    assert client.get_model_version("churn:7").artifact_sha256 == "cd" * 32


def test_a_taken_label_gives_the_content_this_stores_own_label(
    client: Client, repo: ImportRepository
) -> None:
    first = a_run()
    ingest(repo, runs=[first], versions=[], source=SOURCE, actor="alice")
    (component,) = first.components
    # Another store labelled other content of the same shape 1.2 too.
    clash = dataclasses.replace(component, fingerprint="f2" * 32)
    second = a_run(components=(clash,))

    report = ingest(repo, runs=[second], versions=[], source=SOURCE, actor="alice")

    (relabel,) = report.relabelled
    assert (relabel.source_label, relabel.label) == ("1.2", "1.3")
    assert client.get_run(second.id).components["data:train"].label == "1.3"
    assert client.get_run(first.id).components["data:train"].label == "1.2"


def test_a_version_whose_run_is_nowhere_is_refused(repo: ImportRepository) -> None:
    orphan = a_version(a_run())
    with pytest.raises(InvalidInputError, match="neither among the records"):
        ingest(repo, runs=[], versions=[orphan], source=SOURCE, actor="alice")


def test_missing_artifacts_are_refused_before_anything_is_written(
    client: Client, repo: ImportRepository
) -> None:
    run = a_run()
    with pytest.raises(InvalidInputError, match=r"report\.txt: its file abababababab"):
        ingest(
            repo, runs=[run], versions=[], source=SOURCE, actor="alice", has_blob=lambda s, n: False
        )
    assert client.tracker().total == 0

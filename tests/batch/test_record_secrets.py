"""A batch run record never keeps a password: the URLs of its job are kept with the password
hidden, shown so by ``batch history`` and ``batch show``, and a killed run whose output URL had
one is resumed by giving the URL again (``batch resume RUN --output URL``).

The PostgreSQL test server trusts every local connection, so a URL with any password works:
the tests use one to show it never reaches the record."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from modelrail.batch.records import for_the_record, with_secrets
from modelrail.batch.runner import resume_batch
from modelrail.batch.spec import JobSpec
from modelrail.errors import BatchRunStateError
from modelrail.urls import hide_password, hides_password
from tests.batch.conftest import BINARY, ROWS, PostgresOutput, ScoringProject, modelrail_cli
from tests.batch.test_kill_resume import (
    BATCH_ROWS,
    assert_exactly_once,
    kill_during_run,
    killable,
    make_stale,
)

__all__ = ["killable"]
SECRET = "n0t-in-any-record"


def test_passwords_are_hidden_in_any_url_shape() -> None:
    cases = {
        "postgresql://ana:pw@db/scores": "postgresql://ana:***@db/scores",
        "postgresql+psycopg://ana:p/w:x@db:5432/s?sslmode=require": (
            "postgresql+psycopg://ana:***@db:5432/s?sslmode=require"
        ),
        "redis://:pw@cache:6379/0": "redis://:***@cache:6379/0",
        "postgresql://ana@db/scores": "postgresql://ana@db/scores",
        "sqlite:///scores.db": "sqlite:///scores.db",
        "/data/out": "/data/out",
        "s3://bucket/out": "s3://bucket/out",
    }
    for given, shown in cases.items():
        assert hide_password(given) == shown
        assert hides_password(shown) == (shown != given)
    spec = JobSpec(
        reference="m:1",
        output="postgresql://ana:pw@db/scores",
        id_columns=("id",),
        query="select 1",
        query_url="postgresql://ana:pw2@src/raw",
    )
    kept = for_the_record(spec)
    assert ":pw@" not in kept.to_json() and ":pw2@" not in kept.to_json()
    assert with_secrets(kept, "abcd", output=spec.output, query_url=spec.query_url) == spec
    with pytest.raises(BatchRunStateError, match="give the URL again with output"):
        with_secrets(kept, "abcd", output=None, query_url=spec.query_url)
    with pytest.raises(BatchRunStateError, match=r"^query_url .* is not where batch run"):
        with_secrets(kept, "abcd", output=spec.output, query_url="postgresql://ana:pw2@other/raw")


@pytest.mark.postgres
def test_a_killed_run_with_a_password_is_resumed_by_giving_its_url_again(
    killable: ScoringProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = killable
    output = PostgresOutput()
    try:
        output.url = make_url(output.url).set(password=SECRET).render_as_string(False)
        spec = scoring.spec(output, reference=f"{BINARY}@staging", batch_rows=BATCH_ROWS)
        killed = kill_during_run(scoring, spec, 4)
        assert SECRET not in killed.spec and SECRET not in killed.output
        assert JobSpec.from_json(killed.spec).output == hide_password(output.url)
        make_stale(scoring, killed.id)
        for shown in (
            modelrail_cli(monkeypatch, scoring.root, "batch", "history", "--json"),
            modelrail_cli(monkeypatch, scoring.root, "batch", "show", killed.id, "--json"),
        ):
            assert shown.code == 0 and SECRET not in shown.stdout and "***" in shown.stdout

        refused = modelrail_cli(monkeypatch, scoring.root, "batch", "resume", killed.id)
        assert refused.code == 2 and "give the URL again with --output" in refused.stderr
        elsewhere = make_url(output.url).set(database="elsewhere").render_as_string(False)
        with pytest.raises(BatchRunStateError, match="a run resumes where it started"):
            resume_batch(scoring.client, killed.id, output=elsewhere)
        assert SECRET not in refused.stderr

        done = modelrail_cli(
            monkeypatch, scoring.root, "batch", "resume", killed.id, "--output", output.url
        )
        assert done.code == 0, done.stderr
        assert_exactly_once(scoring, output, killed.id, version=1)
        record = scoring.client.batch_run(killed.id)
        assert (record.status, record.rows_written) == ("succeeded", ROWS)
        assert SECRET not in record.spec
    finally:
        output.close()


def test_schedules_are_listed_with_their_passwords_hidden(
    killable: ScoringProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoring = killable
    spec = JobSpec(
        reference=f"{BINARY}@staging",
        inputs=("data.parquet",),
        output=f"postgresql://ana:{SECRET}@db.example.org/scores",
        table="scores",
        id_columns=("id",),
    )
    scoring.client.schedule_batch("nightly", spec, cron="0 3 * * *")
    listed = modelrail_cli(monkeypatch, scoring.root, "batch", "schedules", "--json")
    assert listed.code == 0 and SECRET not in listed.stdout
    assert "postgresql://ana:***@db.example.org/scores" in listed.stdout
    # The scheduler still has what it needs to start the run unattended.
    assert scoring.client.batch_schedules()[0].schedule.spec.output == spec.output

"""One suite, every store: the same life of a model, run through ``Client`` on SQLite and on
PostgreSQL and through ``RemoteClient`` against the team server (in front of either), gives
the same records, the same actors and the same errors.

Each person acts through a client of their own: locally a ``Client`` naming them, on the
server a ``RemoteClient`` signed in with their token. Users (tests/server/conftest.py): mia
a member, ann an approver in prod, sam an approver in staging, ada an admin."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.batch.spec import JobSpec
from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import (
    ApprovalError,
    InvalidReferenceError,
    ModelNotFoundError,
    PromotionError,
)
from modelrail.remote.client import RemoteClient
from modelrail.store.tracker_query import TrackerQuery
from tests.conftest import store_url_of
from tests.server.conftest import HOST, USERS, start_team

MODEL = "churn"
FRAME = pd.DataFrame({"tenure": [1.0, 5.0, 9.0, 2.0, 7.0, 3.0], "calls": [4, 0, 1, 5, 0, 2]})
LABELS = [1, 0, 0, 1, 0, 1]
As = Callable[[str], Client]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        "server on sqlite",
        pytest.param("server on postgres", marks=pytest.mark.postgres),
    ]
)
def people(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[As]:
    """``as_(name)``: a client acting as that person, on the store this variant tests."""
    kind = str(request.param)
    init_project(tmp_path)
    opened: list[Client | RemoteClient] = []
    with contextlib.ExitStack() as stack:
        backend = "postgres" if "postgres" in kind else "sqlite"
        url = stack.enter_context(contextlib.contextmanager(store_url_of)(backend, tmp_path))
        laptop = tmp_path / "laptop"
        laptop.mkdir()
        if kind.startswith("server"):
            team = stack.enter_context(contextlib.contextmanager(start_team)(url, tmp_path))
            settings = load_settings(cwd=laptop, environ={}, create=False)

            def as_(name: str) -> Client:
                made = RemoteClient(
                    f"http://{HOST}:{team.port}", team.tokens[name], settings=settings
                )
                opened.append(made)
                return cast(Client, made)

        else:
            settings = load_settings(cwd=tmp_path, environ={}, create=False)
            with Client(store_url=url, settings=settings, user="setup") as setup:
                for name, roles in USERS.items():
                    setup.add_user(name, roles)

            def as_(name: str) -> Client:
                made = Client(store_url=url, settings=settings, user=name)
                opened.append(made)
                return made

        try:
            yield as_
        finally:
            for client in opened:
                client.close()


def _train(client: Client, accuracy: float) -> int:
    with client.start_run("churn-models") as run:
        run.log_params({"C": 1.0, "features": ["tenure", "calls"]})
        for step, loss in enumerate((0.9, 0.6, 0.4)):
            run.log_metric("loss", loss, step=step)
        run.log_metric("accuracy", accuracy)
        run.log_dataset(FRAME, role="train", name="customers")
        run.log_text("features: tenure, calls", "notes.txt")
        model = LogisticRegression().fit(FRAME, LABELS)
        version = run.log_model(model, MODEL, input_example=FRAME[:2])
    return version.version


def test_a_model_lives_the_same_on_every_store(people: As, tmp_path: Path) -> None:
    mia, ann, sam, ada = people("mia"), people("ann"), people("sam"), people("ada")

    # tracking and the tracker
    assert _train(mia, 0.81) == 1
    page = ann.tracker(TrackerQuery(experiment="churn-models"))
    (row,) = page.rows
    run = ann.get_run(row.run_id)
    assert (run.user, run.params["C"], run.metrics["accuracy"]) == ("mia", 1.0, 0.81)
    assert [p.value for p in ann.metric_history(run.id, "loss")] == [0.9, 0.6, 0.4]
    assert ann.metric_names() == ["accuracy", "loss"]
    query = TrackerQuery(experiment="churn-models")
    assert ann.metric_extremes(query, ["accuracy", "nothing"]) == {"accuracy": (0.81, 0.81)}
    assert ann.run_artifact(run.id, "notes.txt") == b"features: tenure, calls"
    ((dataset, uses),) = ann.datasets()
    assert (dataset.lineage, uses) == ("data:customers/train", 1)

    # the registry
    assert [m.name for m in ann.list_models()] == [MODEL]
    assert ann.get_model_version(f"{MODEL}@dev").version == 1
    loaded = ann.load_model(f"{MODEL}:1")
    expected = LogisticRegression().fit(FRAME, LABELS).predict(FRAME)
    assert list(loaded.predict(FRAME)) == list(expected)
    with pytest.raises(ModelNotFoundError):
        ann.get_model_version("nobody:1")
    with pytest.raises(InvalidReferenceError):
        ann.get_model_version("not a reference!")

    # promotion, a second person's approval, rollback, the history
    mia.promote(f"{MODEL}:1", "staging", reason="first")
    request = ada.promote(f"{MODEL}:1", "prod", reason="ship").request
    assert request is not None and request.requested_by == "ada"
    with pytest.raises(ApprovalError):  # an admin may approve, but not their own request
        ada.approve(request.id)
    assert ann.approve(request.id, reason="checked").event is not None
    assert _train(mia, 0.83) == 2
    mia.promote(f"{MODEL}:2", "staging")
    sam.rollback(MODEL, "staging", reason="drill")
    with pytest.raises(PromotionError):
        sam.rollback(MODEL, "staging")  # version 1 is the first there: nothing to go back to
    history = [(e.environment, e.action, e.to_version, e.actor) for e in ada.history(MODEL)]
    assert history == [
        ("dev", "auto", 1, "mia"),
        ("staging", "promote", 1, "mia"),
        ("prod", "request", 1, "ada"),
        ("prod", "approve", 1, "ann"),
        ("dev", "auto", 2, "mia"),
        ("staging", "promote", 2, "mia"),
        ("staging", "rollback", 1, "sam"),
    ]
    board = {(h.environment, h.model): h.version for h in ada.board()}
    assert board == {("dev", MODEL): 2, ("staging", MODEL): 1, ("prod", MODEL): 1}

    # the shared policy, applied by an admin
    record, created = ada.apply_policy("[environments]\nchain = ['dev', 'staging', 'prod']\n")
    assert created and (record.version, record.author) == (1, "ada")
    assert mia.policy_in_force()[1] == 1

    # users and tokens, by an admin
    zoe = ada.add_user("zoe", ["viewer"])
    assert (zoe.created_by, [str(g) for g in zoe.roles]) == ("ada", ["viewer"])
    token, secret = ada.create_token("zoe", "laptop")
    assert token.user == "zoe" and secret.startswith("mr_")

    # a batch run, recorded as the person who ran it
    FRAME.assign(id=[f"c{i}" for i in range(6)]).to_parquet(tmp_path / "laptop" / "people.parquet")
    spec = JobSpec(
        reference=f"{MODEL}@prod",
        inputs=(str(tmp_path / "laptop" / "people.parquet"),),
        output=f"sqlite:///{tmp_path / 'laptop' / 'scores.db'}",
        table="scores",
        id_columns=("id",),
    )
    done = mia.run_batch(spec)
    assert (done.status, done.rows_written, done.version, done.user) == ("succeeded", 6, 1, "mia")
    assert [r.id for r in ada.batch_runs()] == [done.id]

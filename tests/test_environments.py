"""Moving versions through dev -> staging -> prod: promotion, approval, rollback, history."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import modelrail
from modelrail import environments
from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import EnvironmentEvent, GateResult, ModelVersion
from modelrail.errors import (
    ApprovalError,
    ArtifactIntegrityError,
    ConflictError,
    EnvironmentNotFoundError,
    GateFailedError,
    ModelNotFoundError,
    ModelVersionNotFoundError,
    PromotionError,
    RequestNotFoundError,
)
from modelrail.store import environments_repo

MODEL = "pets-classifier"
Data = tuple[pd.DataFrame, pd.Series]


def gate_results(error: GateFailedError) -> list[GateResult]:
    """Every gate result a GateFailedError carries."""
    return [r for r in error.results if isinstance(r, GateResult)]


@pytest.fixture(scope="module")
def data() -> Data:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="module")
def fitted(data: Data) -> Any:
    X, y = data
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


@pytest.fixture
def bob(client: Client, store_url: str) -> Iterator[Client]:
    """A second user on the same store and settings: the approver."""
    with Client(store_url=store_url, settings=client.settings, user="bob") as made:
        yield made


MakeClient = Callable[..., Client]


@pytest.fixture
def make_client(store_url: str, tmp_path: Path) -> Iterator[MakeClient]:
    """Clients on the test store whose policy comes from a modelrail.toml written here."""
    made: list[Client] = []

    def make(toml: str | None = None, user: str | None = "alice") -> Client:
        init_project(tmp_path)
        if toml is not None:
            (tmp_path / "modelrail.toml").write_text(toml, encoding="utf-8")
        settings = load_settings(cwd=tmp_path, environ={}, create=False)
        made.append(Client(store_url=store_url, settings=settings, user=user))
        return made[-1]

    yield make
    for one in made:
        one.close()


def log_version(client: Client, model: Any, X: pd.DataFrame, accuracy: float = 0.9) -> ModelVersion:
    with client.start_run("pets") as run:
        run.log_dataset(X, role="test", name="pets")
        run.log_metric("accuracy", accuracy)
        return run.log_model(model, MODEL, input_example=X[:5])


def holdings(client: Client) -> dict[tuple[str, str], int]:
    return {(h.model, h.environment): h.version for h in client.board()}


def lines(events: list[EnvironmentEvent]) -> list[tuple[Any, ...]]:
    return [
        (e.action, e.environment, e.from_version, e.to_version, e.actor, e.reason, e.forced)
        for e in events
    ]


class Clock:
    """``time`` as modelrail.environments sees it, ``offset`` seconds in the future."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


# -- entering the chain ------------------------------------------------------------------


def test_new_versions_land_in_the_first_environment(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    log_version(client, fitted, X)
    assert holdings(client) == {(MODEL, "dev"): 1}
    log_version(client, fitted, X)
    assert holdings(client) == {(MODEL, "dev"): 2}
    assert lines(client.history(MODEL)) == [
        ("auto", "dev", None, 1, "tester", "new version logged", False),
        ("auto", "dev", 1, 2, "tester", "new version logged", False),
    ]


def test_new_versions_stay_out_when_auto_enter_first_is_off(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client("[environments]\nauto_enter_first = false\n")
    X, _ = data
    log_version(client, fitted, X)
    assert client.board() == []
    assert client.history(MODEL) == []
    client.promote(f"{MODEL}:1", to="dev")
    assert holdings(client) == {(MODEL, "dev"): 1}


# -- the chain ----------------------------------------------------------------------------


def test_promote_to_prod_requires_staging(client: Client, data: Data, fitted: Any) -> None:
    X, _ = data
    log_version(client, fitted, X)
    before = client.history(MODEL)
    with pytest.raises(PromotionError, match="version 1 has never been in staging") as caught:
        client.promote(f"{MODEL}:1", to="prod")
    assert "promote it to staging before prod" in caught.value.message
    assert caught.value.exit_code != 0
    assert holdings(client) == {(MODEL, "dev"): 1}
    assert client.history(MODEL) == before
    assert client.environment_service.requests() == []


def test_promote_to_staging_requires_dev(make_client: MakeClient, data: Data, fitted: Any) -> None:
    client = make_client("[environments]\nauto_enter_first = false\n")
    X, _ = data
    log_version(client, fitted, X)
    with pytest.raises(PromotionError, match="never been in dev; promote it to dev before"):
        client.promote(f"{MODEL}:1", to="staging")
    assert client.board() == []


def test_policy_can_let_a_version_skip_the_previous_environment(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(
        "[environments.prod]\nrequire_previous = false\napproval = false\n"
        "runtime_compatible = true\n"
    )
    X, _ = data
    log_version(client, fitted, X)
    outcome = client.promote(f"{MODEL}:1", to="prod", reason="hotfix")
    assert outcome.event is not None and outcome.previous_version is None
    assert holdings(client) == {(MODEL, "dev"): 1, (MODEL, "prod"): 1}
    assert "staging" not in {e.environment for e in client.history(MODEL)}


def test_promotion_reports_every_gate_and_changes_the_holder(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    log_version(client, fitted, X)
    log_version(client, fitted, X)
    client.promote(f"{MODEL}:1", to="staging")
    outcome = client.promote(f"{MODEL}:2", to="staging", reason="beats v1 on recall")
    assert (outcome.version, outcome.previous_version) == (2, 1)
    assert not outcome.waiting_for_approval
    gates = {g.gate: g for g in outcome.gates}
    assert gates["signature compatible"].passed
    assert gates["signature compatible"].detail == f"same {X.shape[1]} columns"
    smoke = gates["smoke test within 500 ms"]
    assert smoke.passed and smoke.detail.startswith("sha256 verified, predicted 5 rows in ")
    assert holdings(client)[(MODEL, "staging")] == 2
    event = client.history(MODEL, "staging")[-1]
    assert event == outcome.event
    assert (event.action, event.from_version, event.to_version, event.reason) == (
        "promote",
        1,
        2,
        "beats v1 on recall",
    )
    assert event.gates == outcome.gates


def test_promote_by_environment_reference_moves_what_it_holds(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    log_version(client, fitted, X)
    log_version(client, fitted, X)
    outcome = client.promote(f"{MODEL}@dev", to="staging")
    assert outcome.version == 2
    assert holdings(client)[(MODEL, "staging")] == 2


# -- gates and force ------------------------------------------------------------------------


STRICT_STAGING = "[environments.staging]\nmin = { accuracy = 0.99 }\n"


def test_failed_gate_raises_and_changes_nothing(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(STRICT_STAGING)
    X, _ = data
    log_version(client, fitted, X, accuracy=0.9)
    board, history = client.board(), client.history()
    with pytest.raises(GateFailedError) as caught:
        client.promote(f"{MODEL}:1", to="staging", reason="try")
    assert caught.value.message == (
        f"{MODEL} version 1 did not pass the gates of staging (min accuracy >= 0.99); "
        "nothing was changed"
    )
    assert caught.value.exit_code == 7
    failed = [r for r in gate_results(caught.value) if not r.passed]
    assert [(r.gate, r.detail) for r in failed] == [("min accuracy >= 0.99", "0.9")]
    assert client.board() == board
    assert client.history() == history
    assert client.environment_service.requests(None) == []


def test_force_needs_a_reason(make_client: MakeClient, data: Data, fitted: Any) -> None:
    client = make_client(STRICT_STAGING)
    X, _ = data
    log_version(client, fitted, X, accuracy=0.9)
    history = client.history()
    for reason in ("", "   "):
        with pytest.raises(PromotionError, match="force skips the gates, so it needs a reason"):
            client.promote(f"{MODEL}:1", to="staging", force=True, reason=reason)
    assert client.history() == history
    assert (MODEL, "staging") not in holdings(client)


def test_force_skips_the_gates_and_is_recorded_as_forced(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(STRICT_STAGING)
    X, _ = data
    log_version(client, fitted, X, accuracy=0.9)
    outcome = client.promote(f"{MODEL}:1", to="staging", force=True, reason="incident 42")
    assert outcome.gates == ()
    assert holdings(client)[(MODEL, "staging")] == 1
    event = client.history(MODEL, "staging")[-1]
    assert (event.action, event.forced, event.gates, event.reason, event.actor) == (
        "promote",
        True,
        (),
        "incident 42",
        "alice",
    )


def damage(client: Client, sha256: str) -> Path:
    """Flip one byte of a stored blob: same size, other content."""
    path = client.artifacts.path_for(sha256)
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(content))
    return path


def compiled_sha256(version: ModelVersion) -> str:
    """The sha256 of the predictor form that serves one row (a linear model has one)."""
    from modelrail.scoring.forms.record import forms_record

    record = forms_record(version)
    chosen = None if record is None else record.chosen_for("one_row")
    assert chosen is not None and chosen.sha256 is not None
    return chosen.sha256


def compiled_label(version: ModelVersion) -> str:
    """How errors name that form: ``pets-classifier:1 onnxruntime form``."""
    assert version.forms is not None
    return f"{version.reference} {version.forms['chosen']['one_row']} form"


@pytest.mark.parametrize("blob", ["model file", "compiled form"])
def test_force_skips_the_gates_but_never_the_sha256_check(
    make_client: MakeClient, data: Data, fitted: Any, blob: str
) -> None:
    client = make_client(STRICT_STAGING)
    X, _ = data
    version = log_version(client, fitted, X, accuracy=0.9)
    sha256 = version.artifact_sha256 if blob == "model file" else compiled_sha256(version)
    path = damage(client, sha256)
    board, history = client.board(), client.history()
    shown = f"{MODEL}:1" if blob == "model file" else compiled_label(version)
    with pytest.raises(ArtifactIntegrityError) as caught:
        client.promote(f"{MODEL}:1", to="staging", force=True, reason="incident 42")
    assert caught.value.message.startswith(f"artifact {shown} ({path}) has sha256 ")
    assert caught.value.exit_code == 6
    assert client.board() == board and client.history() == history


def test_approval_fails_if_the_compiled_form_was_damaged_after_the_request(
    client: Client, bob: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted)
    request = client.promote(f"{MODEL}:1", to="prod").request
    assert request is not None
    damage(client, compiled_sha256(client.get_model_version(f"{MODEL}:1")))
    history = client.history()
    with pytest.raises(GateFailedError) as caught:
        bob.approve(request.id)
    (failed,) = [r for r in gate_results(caught.value) if not r.passed]
    assert failed.gate.startswith("smoke test") and failed.detail.startswith("as served: ")
    assert (MODEL, "prod") not in holdings(client)
    assert client.history() == history


def test_approval_checks_the_sha256_even_without_a_smoke_test(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    alice = make_client("[environments.prod]\napproval = true\nsmoke_test = false\n")
    bob = make_client(user="bob")
    X, _ = data
    _in_staging(alice, X, fitted)
    request = alice.promote(f"{MODEL}:1", to="prod").request
    assert request is not None
    damage(alice, compiled_sha256(alice.get_model_version(f"{MODEL}:1")))
    with pytest.raises(ArtifactIntegrityError, match=f"artifact {MODEL}:1 [a-z-]+ form "):
        bob.approve(request.id)
    assert (MODEL, "prod") not in holdings(alice)
    assert alice.environment_service.repo.get_request(request.id).status == "pending"


# -- approval -------------------------------------------------------------------------------


def _in_staging(client: Client, X: pd.DataFrame, model: Any, count: int = 1) -> None:
    for _ in range(count):
        version = log_version(client, model, X)
        client.promote(version.reference, to="staging")


def test_prod_opens_a_request_that_someone_else_approves(
    client: Client, bob: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted)
    outcome = client.promote(f"{MODEL}:1", to="prod", reason="ready")
    assert outcome.waiting_for_approval and outcome.event is None
    request = outcome.request
    assert request is not None
    assert (request.status, request.requested_by, request.version, request.environment) == (
        "pending",
        "tester",
        1,
        "prod",
    )
    assert request.expires_at == pytest.approx(request.created_at + 72 * 3600)
    assert {g.gate for g in request.gates} >= {"runtime compatible", "signature compatible"}
    assert (MODEL, "prod") not in holdings(client)
    assert client.environment_service.requests() == [request]

    with pytest.raises(ApprovalError, match="needs approval by someone else"):
        client.approve(request.id)
    assert (MODEL, "prod") not in holdings(client)

    approved = bob.approve(request.id, reason="reviewed")
    assert approved.event is not None and approved.event.action == "approve"
    assert holdings(client)[(MODEL, "prod")] == 1
    decided = client.environment_service.repo.get_request(request.id)
    assert (decided.status, decided.decided_by, decided.decision_reason) == (
        "approved",
        "bob",
        "reviewed",
    )
    assert lines(client.history(MODEL, "prod")) == [
        ("request", "prod", None, 1, "tester", "ready", False),
        ("approve", "prod", None, 1, "bob", "reviewed", False),
    ]
    assert client.environment_service.requests() == []


def test_a_second_request_for_the_same_promotion_is_refused_while_one_waits_even_forced(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted)
    request = client.promote(f"{MODEL}:1", to="prod").request
    assert request is not None
    history = client.history()
    with pytest.raises(PromotionError, match=f"request {request.id} .* already waiting"):
        client.promote(f"{MODEL}:1", to="prod")
    with pytest.raises(PromotionError, match=f"request {request.id} .* already waiting"):
        client.promote(f"{MODEL}:1", to="prod", force=True, reason="cannot wait")
    assert len(client.environment_service.requests()) == 1
    assert client.history() == history
    assert (MODEL, "prod") not in holdings(client)


def test_request_is_not_opened_if_the_environment_changed_after_its_checks(
    client: Client, data: Data, fitted: Any
) -> None:
    """The holder the checks saw is compared again in the transaction writing the request."""
    X, _ = data
    _in_staging(client, X, fitted, count=2)
    repo = client.environment_service.repo
    seen = repo.holding(MODEL, "prod")  # what a request's checks saw: nothing yet
    client.promote(f"{MODEL}:2", to="prod", force=True, reason="meanwhile")
    changed = f"{MODEL}@prod was changed .* now holds version 2"
    with pytest.raises(ConflictError, match=changed), client.db.write() as conn:
        repo.create_request(
            conn,
            model=MODEL,
            version=1,
            environment="prod",
            expected=seen,
            if_holds=None,
            requested_by="tester",
            reason="",
            gates=(),
            expires_in_s=3600,
        )
    assert client.environment_service.requests(None) == []


def test_approval_honours_the_if_holds_its_request_was_opened_with(
    client: Client, bob: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=3)
    client.promote(f"{MODEL}:1", to="prod", force=True, reason="first")
    request = client.promote(f"{MODEL}:2", to="prod", if_holds=1).request
    assert request is not None
    client.promote(f"{MODEL}:3", to="prod", force=True, reason="hotfix")
    history = client.history()
    with pytest.raises(
        ConflictError,
        match=(
            f"request {request.id} was opened with if_holds 1, but {MODEL}@prod now holds "
            "version 3: nothing was changed; reject it and promote again"
        ),
    ):
        bob.approve(request.id)
    assert holdings(client)[(MODEL, "prod")] == 3
    assert client.history() == history
    assert client.environment_service.repo.get_request(request.id).status == "pending"
    # Back to version 1, the condition holds again and the approval goes through.
    client.rollback(MODEL, "prod")
    assert bob.approve(request.id).event is not None
    assert holdings(client)[(MODEL, "prod")] == 2


def test_approving_or_rejecting_an_expired_request_is_a_conflict(
    client: Client, bob: Client, data: Data, fitted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = data
    _in_staging(client, X, fitted)
    request = client.promote(f"{MODEL}:1", to="prod").request
    assert request is not None
    history = client.history()
    # Expiry is judged where requests are read, so both modules see the later clock.
    monkeypatch.setattr(environments, "time", Clock(73 * 3600))
    monkeypatch.setattr(environments_repo, "time", Clock(73 * 3600))
    with pytest.raises(ConflictError, match=f"request {request.id} expired at .*promote again"):
        bob.approve(request.id)
    with pytest.raises(ConflictError, match=f"request {request.id} expired at .*promote again"):
        bob.reject(request.id)
    assert (MODEL, "prod") not in holdings(client)
    assert client.history() == history
    # Once expired it no longer blocks a fresh request.
    again = client.promote(f"{MODEL}:1", to="prod").request
    assert again is not None and again.id != request.id


def test_deciding_a_decided_request_again_is_a_conflict(
    client: Client, bob: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=2)
    first = client.promote(f"{MODEL}:1", to="prod").request
    assert first is not None
    bob.approve(first.id)
    history = client.history()
    with pytest.raises(ConflictError, match=f"request {first.id} was already approved by bob") as e:
        bob.approve(first.id)
    assert (e.value.http_status, e.value.exit_code) == (409, 5)  # the state, not a permission
    with pytest.raises(ConflictError, match=f"request {first.id} was already approved by bob"):
        bob.reject(first.id)
    second = client.promote(f"{MODEL}:2", to="prod").request
    assert second is not None
    bob.reject(second.id, reason="not now")
    with pytest.raises(ConflictError, match=f"request {second.id} was already rejected by bob"):
        bob.approve(second.id)
    with pytest.raises(ConflictError, match=f"request {second.id} was already rejected by bob"):
        bob.reject(second.id)
    assert holdings(client)[(MODEL, "prod")] == 1
    assert len(client.history()) == len(history) + 2  # the second request and its rejection


def test_reject_is_recorded_and_changes_nothing(
    client: Client, bob: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted)
    request = client.promote(f"{MODEL}:1", to="prod", reason="please").request
    assert request is not None
    rejected = bob.reject(request.id, reason="recall too low")
    assert (rejected.status, rejected.decided_by, rejected.decision_reason) == (
        "rejected",
        "bob",
        "recall too low",
    )
    assert (MODEL, "prod") not in holdings(client)
    assert lines(client.history(MODEL, "prod")) == [
        ("request", "prod", None, 1, "tester", "please", False),
        ("reject", "prod", None, 1, "bob", "recall too low", False),
    ]
    assert client.history(MODEL, "prod")[-1].request_id == request.id


def test_approval_runs_the_gates_again_against_what_the_environment_holds_now(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    alice = make_client("[environments.prod]\napproval = true\nbeat_incumbent = true\n")
    bob = make_client(user="bob")
    X, _ = data
    for accuracy in (0.90, 0.92, 0.95):
        version = log_version(alice, fitted, X, accuracy=accuracy)
        alice.promote(version.reference, to="staging")
    first = alice.promote(f"{MODEL}:1", to="prod").request
    assert first is not None
    bob.approve(first.id)
    request = alice.promote(f"{MODEL}:2", to="prod").request  # 0.92 beats 0.90 now
    assert request is not None
    alice.promote(f"{MODEL}:3", to="prod", force=True, reason="urgent fix")
    history = alice.history()
    with pytest.raises(GateFailedError, match="did not pass the gates of prod") as caught:
        bob.approve(request.id)
    beat = next(r for r in gate_results(caught.value) if r.gate.startswith("beats"))
    assert not beat.passed and beat.detail == "0.92 vs 0.95 (version 3)"
    assert holdings(alice)[(MODEL, "prod")] == 3
    assert alice.history() == history
    assert alice.environment_service.repo.get_request(request.id).status == "pending"


# -- bad input -------------------------------------------------------------------------------


def test_promoting_to_the_environment_it_already_holds_is_refused(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    log_version(client, fitted, X)
    history = client.history()
    with pytest.raises(PromotionError, match=f"dev already holds {MODEL} version 1"):
        client.promote(f"{MODEL}:1", to="dev")
    with pytest.raises(PromotionError, match="already holds"):
        client.promote(f"{MODEL}:1", to="dev", force=True, reason="again")
    assert client.history() == history


def test_unknown_model_version_environment_and_request_are_named(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    log_version(client, fitted, X)
    history = client.history()
    with pytest.raises(ModelNotFoundError, match="no model named 'dogs'") as caught:
        client.promote("dogs:1", to="staging")
    assert caught.value.exit_code == 4
    with pytest.raises(ModelVersionNotFoundError, match=f"model '{MODEL}' has no version 9"):
        client.promote(f"{MODEL}:9", to="staging")
    chain = "the chain is dev -> staging -> prod"
    with pytest.raises(EnvironmentNotFoundError, match=f"unknown environment 'qa': {chain}"):
        client.promote(f"{MODEL}:1", to="qa")
    with pytest.raises(EnvironmentNotFoundError, match="unknown environment 'qa'"):
        client.promote(f"{MODEL}@qa", to="staging")
    with pytest.raises(EnvironmentNotFoundError, match="unknown environment 'qa'"):
        client.rollback(MODEL, "qa")
    with pytest.raises(EnvironmentNotFoundError, match="unknown environment 'qa'"):
        client.history(MODEL, "qa")
    with pytest.raises(ModelNotFoundError, match="no model named 'dogs'"):
        client.rollback("dogs", "prod")
    with pytest.raises(ModelNotFoundError, match="no model named 'dogs'"):
        client.history("dogs")
    with pytest.raises(RequestNotFoundError, match="no approval request 99"):
        client.approve(99)
    with pytest.raises(RequestNotFoundError, match="no approval request 99"):
        client.reject(99)
    assert client.history() == history
    assert holdings(client) == {(MODEL, "dev"): 1}


# -- rollback ----------------------------------------------------------------------------------


def test_repeated_rollbacks_walk_back_the_history(client: Client, data: Data, fitted: Any) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=3)
    assert holdings(client)[(MODEL, "staging")] == 3
    event = client.rollback(MODEL, "staging", reason="v3 misbehaves")
    assert (event.action, event.from_version, event.to_version, event.reason) == (
        "rollback",
        3,
        2,
        "v3 misbehaves",
    )
    assert holdings(client)[(MODEL, "staging")] == 2
    client.rollback(MODEL, "staging")
    assert holdings(client)[(MODEL, "staging")] == 1
    with pytest.raises(PromotionError, match="version 1 is the first version in its history"):
        client.rollback(MODEL, "staging")
    assert holdings(client)[(MODEL, "staging")] == 1
    assert [(e.action, e.from_version, e.to_version) for e in client.history(MODEL, "staging")] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]


def test_rollback_after_a_rollback_and_a_new_promotion_returns_to_the_one_before(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=3)  # staging: 1, 2, 3
    client.rollback(MODEL, "staging")  # back to 2
    log_version(client, fitted, X)
    client.promote(f"{MODEL}:4", to="staging")  # 2 -> 4
    client.rollback(MODEL, "staging")
    assert holdings(client)[(MODEL, "staging")] == 2


def test_rollback_to_a_named_version_must_have_been_there(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=3)
    log_version(client, fitted, X)  # version 4, only in dev
    with pytest.raises(
        PromotionError, match=r"version 4 of .* was never in staging \(it held: 1, 2, 3\)"
    ):
        client.rollback(MODEL, "staging", to_version=4)
    with pytest.raises(PromotionError, match=f"staging already holds {MODEL} version 3"):
        client.rollback(MODEL, "staging", to_version=3)
    assert holdings(client)[(MODEL, "staging")] == 3
    event = client.rollback(MODEL, "staging", to_version=1, reason="known good")
    assert (event.from_version, event.to_version, event.reason) == (3, 1, "known good")
    assert holdings(client)[(MODEL, "staging")] == 1


def test_rollback_of_an_empty_environment_is_a_clear_error(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    log_version(client, fitted, X)
    with pytest.raises(PromotionError, match=f"prod holds no version of '{MODEL}': nothing"):
        client.rollback(MODEL, "prod")
    with pytest.raises(PromotionError, match="version 1 is the first version in its history"):
        client.rollback(MODEL, "dev")


def test_rollback_refuses_a_version_whose_artifact_no_longer_verifies(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=2)
    first = client.get_model_version(f"{MODEL}:1")
    path = client.artifacts.path_for(first.artifact_sha256)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-1])  # truncated
    history = client.history()
    with pytest.raises(ArtifactIntegrityError, match=f"artifact {MODEL}:1 .* truncated"):
        client.rollback(MODEL, "staging")
    assert holdings(client)[(MODEL, "staging")] == 2
    assert client.history() == history


def test_rollback_refuses_a_version_whose_compiled_form_no_longer_verifies(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=2)
    damage(client, compiled_sha256(client.get_model_version(f"{MODEL}:1")))
    history = client.history()
    with pytest.raises(ArtifactIntegrityError, match=f"artifact {MODEL}:1 [a-z-]+ form "):
        client.rollback(MODEL, "staging")
    assert holdings(client)[(MODEL, "staging")] == 2
    assert client.history() == history


def test_load_model_at_an_environment_follows_promotion_and_rollback(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=2)
    loaded = modelrail.load_model(f"{MODEL}@staging", client=client)
    assert loaded.version.version == 2
    assert list(loaded.predict(X[:20])) == list(fitted.predict(X[:20]))
    client.rollback(MODEL, "staging")
    assert modelrail.load_model(f"{MODEL}@staging", client=client).version.version == 1
    assert client.get_model_version(f"{MODEL}@dev").version == 2
    with pytest.raises(ModelVersionNotFoundError, match=f"prod holds no version of '{MODEL}'"):
        modelrail.load_model(f"{MODEL}@prod", client=client)


def test_load_model_at_prod_loads_what_prod_holds(
    client: Client, bob: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted, count=2)
    for version in (1, 2):
        request = client.promote(f"{MODEL}:{version}", to="prod").request
        assert request is not None
        bob.approve(request.id)
    assert modelrail.load_model(f"{MODEL}@prod", client=client).version.version == 2
    bob.rollback(MODEL, "prod", reason="bad canary")
    assert modelrail.load_model(f"{MODEL}@prod", client=client).version.version == 1


# -- history --------------------------------------------------------------------------------


def test_history_is_complete_and_in_order(
    client: Client, bob: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    log_version(client, fitted, X)
    log_version(client, fitted, X)
    client.promote(f"{MODEL}:1", to="staging", reason="first")
    client.promote(f"{MODEL}:2", to="staging", reason="better")
    first = client.promote(f"{MODEL}:1", to="prod", reason="ship v1").request
    assert first is not None
    bob.approve(first.id, reason="ok")
    second = client.promote(f"{MODEL}:2", to="prod", reason="ship v2").request
    assert second is not None
    bob.reject(second.id, reason="wait for the canary")
    client.promote(f"{MODEL}:2", to="prod", force=True, reason="incident 7")
    bob.rollback(MODEL, "prod", reason="v2 broke the canary")
    client.rollback(MODEL, "staging", to_version=1, reason="match prod")

    events = client.history(MODEL)
    assert lines(events) == [
        ("auto", "dev", None, 1, "tester", "new version logged", False),
        ("auto", "dev", 1, 2, "tester", "new version logged", False),
        ("promote", "staging", None, 1, "tester", "first", False),
        ("promote", "staging", 1, 2, "tester", "better", False),
        ("request", "prod", None, 1, "tester", "ship v1", False),
        ("approve", "prod", None, 1, "bob", "ok", False),
        ("request", "prod", 1, 2, "tester", "ship v2", False),
        ("reject", "prod", 1, 2, "bob", "wait for the canary", False),
        ("promote", "prod", 1, 2, "tester", "incident 7", True),
        ("rollback", "prod", 2, 1, "bob", "v2 broke the canary", False),
        ("rollback", "staging", 2, 1, "tester", "match prod", False),
    ]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stamps = [e.created_at for e in events]
    assert stamps == sorted(stamps)
    assert all(0 < time.time() - s < 600 for s in stamps)
    by_action = {(e.action, e.environment, e.to_version): e for e in events}
    promoted = by_action[("promote", "staging", 2)]
    assert {g.gate for g in promoted.gates} == {"signature compatible", "smoke test within 500 ms"}
    assert all(g.passed for g in promoted.gates)
    approved = by_action[("approve", "prod", 1)]
    assert approved.request_id == first.id
    assert "runtime compatible" in {g.gate for g in approved.gates}
    assert by_action[("request", "prod", 1)].gates == first.gates
    assert by_action[("reject", "prod", 2)].request_id == second.id
    assert client.history(MODEL, "prod") == [e for e in events if e.environment == "prod"]
    assert client.history() == events


def test_history_names_the_configured_identity_as_actor(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client('[identity]\nuser = "carol"\n', user=None)
    X, _ = data
    log_version(client, fitted, X)
    client.promote(f"{MODEL}:1", to="staging", reason="mine")
    assert [(e.action, e.actor) for e in client.history(MODEL)] == [
        ("auto", "carol"),
        ("promote", "carol"),
    ]


def test_history_cannot_be_changed_or_deleted_even_with_raw_sql(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    log_version(client, fitted, X)
    log_version(client, fitted, X)
    before = client.history()
    statements = [
        "UPDATE environment_events SET actor = 'mallory'",
        "UPDATE environment_events SET to_version = 99 WHERE to_version = 2",
        "DELETE FROM environment_events",
        "DELETE FROM environment_events WHERE to_version = 1",
    ]
    if not client.db.is_sqlite:
        statements.append("TRUNCATE environment_events")
    for statement in statements:
        with (
            pytest.raises(DBAPIError, match="environment_events is append-only"),
            client.db.engine.begin() as conn,
        ):
            conn.execute(text(statement))
    assert client.history() == before


# -- board and environments ----------------------------------------------------------------


def test_environments_show_the_chain_with_what_each_holds(
    client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    _in_staging(client, X, fitted)
    log_version(client, fitted, X)
    with client.start_run("dogs") as run:
        run.log_model(fitted, "dogs-classifier", input_example=X[:5])
    views = client.environments()
    assert [v.name for v in views] == ["dev", "staging", "prod"]
    dev, staging, prod = views
    assert {m: h.version for m, h in dev.holdings.items()} == {MODEL: 2, "dogs-classifier": 1}
    assert {m: h.version for m, h in staging.holdings.items()} == {MODEL: 1}
    assert prod.holdings == {}
    assert prod.policy.gates.approval and not staging.policy.gates.approval
    assert staging.holdings[MODEL].since <= time.time()
    assert [(h.model, h.environment, h.version) for h in client.board()] == [
        ("dogs-classifier", "dev", 1),
        (MODEL, "dev", 2),
        (MODEL, "staging", 1),
    ]

"""``Client``'s environment methods as the dashboard calls them: gate checks that change
nothing, approval requests read back, and the person acting named with ``actor``."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.entities import ModelVersion
from modelrail.errors import ApprovalError, RequestNotFoundError

MODEL = "tiny"


def register(client: Client) -> ModelVersion:
    """A version of ``tiny`` in dev (the chain's first environment)."""
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    return client.register_model(model, MODEL, input_example=X[:2])


def test_check_promotion_gives_the_gate_results_and_moves_nothing(client: Client) -> None:
    version = register(client)
    results = client.check_promotion(version.reference, "staging")
    assert results and all(r.passed for r in results)
    assert [(h.environment, h.version) for h in client.board()] == [("dev", 1)]
    assert client.history(MODEL, "staging") == []


def test_promote_approve_and_rollback_record_the_actor_given(client: Client) -> None:
    register(client)
    client.promote(f"{MODEL}:1", "staging", actor="alice")
    outcome = client.promote(f"{MODEL}:1", "prod", reason="ship", actor="alice")
    assert outcome.request is not None and outcome.event is None
    request = client.approval_request(outcome.request.id)
    assert (request.status, request.requested_by, request.reason) == ("pending", "alice", "ship")
    assert client.approval_requests() == [request]
    with pytest.raises(ApprovalError):
        client.approve(request.id, actor="alice")  # four eyes: not the requester
    approved = client.approve(request.id, reason="ok", actor="bob")
    assert approved.event is not None and approved.event.actor == "bob"
    assert client.approval_request(request.id).decided_by == "bob"
    assert client.approval_requests() == []
    assert [r.id for r in client.approval_requests("approved")] == [request.id]
    register(client)
    client.promote(f"{MODEL}:2", "staging")
    back = client.rollback(MODEL, "staging", reason="slow", actor="carol")
    assert (back.actor, back.from_version, back.to_version) == ("carol", 2, 1)
    actors = [(e.action, e.environment, e.actor) for e in client.history(MODEL)]
    assert actors == [
        ("auto", "dev", "tester"),
        ("promote", "staging", "alice"),
        ("request", "prod", "alice"),
        ("approve", "prod", "bob"),
        ("auto", "dev", "tester"),
        ("promote", "staging", "tester"),  # no actor: the client's user
        ("rollback", "staging", "carol"),
    ]


def test_reject_records_the_actor_given_and_unknown_requests_are_not_found(
    client: Client,
) -> None:
    register(client)
    client.promote(f"{MODEL}:1", "staging")
    request = client.promote(f"{MODEL}:1", "prod").request
    assert request is not None
    rejected = client.reject(request.id, reason="not yet", actor="dana")
    assert (rejected.status, rejected.decided_by) == ("rejected", "dana")
    assert client.approval_request(request.id).status == "rejected"
    with pytest.raises(RequestNotFoundError):
        client.approval_request(request.id + 1)

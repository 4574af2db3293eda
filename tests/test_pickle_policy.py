"""The pickle policy: a version saved with allow_pickle=True never gets into an environment
with ``allow_pickle = false`` (prod by default): not through its gates, not with --force,
not by an approval or a rollback; and its pickle is not even loaded to find out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import GateResult, ModelVersion
from modelrail.errors import GateFailedError
from modelrail.gates import SHIPPED_CODE, load_risk, safe_format
from tests.test_gates import failed_gates, gate_results, gates

MODEL = "pets-classifier"
REFUSED = GateResult(
    "safe format", False, "joblib pickle: unsafe to load; allow_pickle = false in prod"
)
# Every time a Halves is unpickled; emptied before each test.
LOADS: list[str] = []


class Halves:
    """Not scikit-learn: saved only with allow_pickle=True, as a joblib pickle."""

    def __init__(self) -> None:
        self.threshold = 0.0

    def predict(self, X: Any) -> Any:
        return (np.asarray(X, dtype=float)[:, 0] > self.threshold).astype(int)

    def __setstate__(self, state: dict[str, Any]) -> None:
        LOADS.append("loaded")
        self.__dict__.update(state)


MakeClient = Callable[..., Client]


@pytest.fixture
def make_client(store_url: str, tmp_path: Path) -> Iterator[MakeClient]:
    """Clients on the test store with the default chain plus ``prod`` settings."""
    made: list[Client] = []

    def make(prod: str = "approval = false\n", user: str = "alice", first: str = "") -> Client:
        init_project(tmp_path)
        toml = f"[environments.dev]\n{first}[environments.prod]\n{prod}"
        (tmp_path / "modelrail.toml").write_text(toml, encoding="utf-8")
        settings = load_settings(cwd=tmp_path, environ={}, create=False)
        made.append(Client(store_url=store_url, settings=settings, user=user))
        return made[-1]

    LOADS.clear()
    yield make
    for one in made:
        one.close()


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(rng.normal(size=(30, 3)), columns=["age", "weight", "height"])


def log_pickle(client: Client) -> ModelVersion:
    with client.start_run("pets") as run:
        return run.log_model(Halves(), MODEL, input_example=frame()[:5], allow_pickle=True)


def log_skops(client: Client) -> ModelVersion:
    X = frame()
    with client.start_run("pets") as run:
        model = LogisticRegression().fit(X, (X["age"] > 0).astype(int))
        return run.log_model(model, MODEL, input_example=X[:5])


def test_prod_refuses_a_pickled_version_at_its_gates_without_loading_it(
    make_client: MakeClient,
) -> None:
    client = make_client()
    version = log_pickle(client)
    assert version.flavor == "joblib" and version.flavor_details["unsafe"] is True
    client.promote(f"{MODEL}:1", "staging")  # staging allows pickles: its smoke test loads it
    assert "safe format" not in gates(client, f"{MODEL}:1", "staging")
    LOADS.clear()
    failed = failed_gates(client, f"{MODEL}:1", "prod")
    assert failed[0] == REFUSED
    # The smoke test would load the pickle, which is what the policy forbids.
    assert failed[1].gate.startswith("smoke test") and failed[1].detail.startswith("not run")
    assert LOADS == []


def test_a_safe_version_passes_the_safe_format_gate_naming_its_format(
    make_client: MakeClient,
) -> None:
    client = make_client()
    log_skops(client)
    client.promote(f"{MODEL}:1", "staging")
    outcome = client.promote(f"{MODEL}:1", "prod")
    assert outcome.gates[0] == GateResult("safe format", True, "skops")
    assert outcome.event is not None and outcome.event.gates[0].passed


def test_force_does_not_override_the_pickle_policy(make_client: MakeClient) -> None:
    client = make_client()
    log_pickle(client)
    board, history = client.board(), client.history()
    with pytest.raises(GateFailedError, match="which force does not override") as caught:
        client.promote(f"{MODEL}:1", "prod", force=True, reason="hotfix")
    assert gate_results(caught.value) == [REFUSED]
    assert caught.value.exit_code == 7
    assert (client.board(), client.history()) == (board, history)
    # Where pickles are allowed, --force still works as before.
    assert client.promote(f"{MODEL}:1", "staging", force=True, reason="try it").event


def test_an_approval_judges_the_pickle_policy_as_it_is_now(
    make_client: MakeClient, store_url: str
) -> None:
    client = make_client("approval = true\nallow_pickle = true\n")
    log_pickle(client)
    client.promote(f"{MODEL}:1", "staging")
    outcome = client.promote(f"{MODEL}:1", "prod")
    assert outcome.request is not None
    bob = make_client("approval = true\n", user="bob")  # the policy was tightened since
    with pytest.raises(GateFailedError) as caught:
        bob.approve(outcome.request.id, reason="looks fine")
    assert REFUSED in gate_results(caught.value)
    assert bob.environment_service.requests("pending")[0].id == outcome.request.id
    assert all(h.environment != "prod" for h in bob.board())


def test_a_rollback_never_returns_to_a_pickle_the_environment_refuses(
    make_client: MakeClient,
) -> None:
    client = make_client("approval = false\nallow_pickle = true\n")
    log_pickle(client)
    log_skops(client)
    for version in (1, 2):
        client.promote(f"{MODEL}:{version}", "staging")
        client.promote(f"{MODEL}:{version}", "prod")
    strict = make_client()
    history = strict.history()
    with pytest.raises(GateFailedError, match="a rollback does not override") as caught:
        strict.rollback(MODEL, "prod", reason="v2 is slow")
    assert gate_results(caught.value) == [REFUSED]
    assert strict.history() == history
    assert strict.get_model_version(f"{MODEL}@prod").version == 2


def test_a_pickle_stays_out_of_a_first_environment_that_refuses_it(
    make_client: MakeClient,
) -> None:
    client = make_client(first="allow_pickle = false\n")
    assert log_pickle(client).version == 1  # registered all the same
    assert client.board() == []
    log_skops(client)
    assert [(h.environment, h.version) for h in client.board()] == [("dev", 2)]


def test_the_safe_format_gate_names_the_code_a_custom_version_runs(
    make_client: MakeClient,
) -> None:
    version = log_skops(make_client())
    files = {f"scorers/part{n}.py": "0" * 64 for n in range(5)}
    custom = dataclasses.replace(
        version,
        flavor="python",
        flavor_details={"format": "python-code", "code": files, "runs_code": True},
    )
    assert safe_format(custom, "prod") == GateResult(
        "safe format",
        True,
        "python-code; runs shipped code: scorers/part0.py, scorers/part1.py, scorers/part2.py "
        "and 2 more",
    )
    assert load_risk(custom) == SHIPPED_CODE and load_risk(version) is None

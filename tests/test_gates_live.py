"""Gates from live data: before entering prod, the candidate must have answered enough
requests in staging (or as a shadow), with inputs close to its reference profile, and a live
metric on labelled traffic at least the incumbent's. Real Parquet logs in the project's
monitoring folder, real registered versions, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import GateResult
from modelrail.errors import GateFailedError
from modelrail.monitoring import logfiles

MODEL = "churn"
FEATURES = ("tenure", "spend", "visits")
POLICY = """
[environments]
chain = ["dev", "staging", "prod"]
primary_metric = "accuracy"

[environments.prod]
approval = false
runtime_compatible = false
{gates}
"""


def training_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=list(FEATURES))


@pytest.fixture(scope="module")
def fitted() -> LogisticRegression:
    X = training_frame()
    return LogisticRegression().fit(X, (X["tenure"] + X["spend"] > 0).astype(int))


MakeClient = Callable[[str], Client]


@pytest.fixture
def make_client(store_url: str, tmp_path: Path) -> Iterator[MakeClient]:
    """A client on the test store whose prod has the live-data ``gates`` (TOML lines)."""
    made: list[Client] = []

    def make(gates: str) -> Client:
        init_project(tmp_path)
        (tmp_path / "modelrail.toml").write_text(POLICY.format(gates=gates), encoding="utf-8")
        settings = load_settings(cwd=tmp_path, environ={}, create=False)
        made.append(Client(store_url=store_url, settings=settings, user="alice"))
        return made[-1]

    yield make
    for one in made:
        one.close()


def register(client: Client, model: Any, accuracy: float = 0.9) -> int:
    """A version whose run logged its training and test data (so it has a reference
    profile) and ``accuracy``."""
    with client.start_run("churn") as run:
        run.log_dataset(training_frame(), role="train", name="customers")
        run.log_dataset(training_frame(100, seed=1), role="test", name="customers")
        run.log_metric("accuracy", accuracy)
        return run.log_model(model, MODEL, input_example=training_frame(5)).version


def two_versions(client: Client, model: Any) -> None:
    """Version 1 in prod (put there by force, as an incumbent), version 2 in staging."""
    register(client, model)
    register(client, model)
    client.promote(f"{MODEL}:1", "staging", reason="first")
    client.promote(f"{MODEL}:1", "prod", force=True, reason="the incumbent")
    client.promote(f"{MODEL}:2", "staging", reason="the candidate")


def log_traffic(
    client: Client,
    version: int,
    environment: str,
    count: int,
    *,
    source: str = "serve",
    rate: float = 1.0,
    shift: float = 0.0,
    predictions: Sequence[str] | None = None,
    prefix: str | None = None,
) -> list[str]:
    """``count`` logged single-row requests answered by ``version``; their request ids."""
    prefix = prefix or f"{environment}-{source}-v{version}-{time.monotonic_ns()}"
    ids = [f"{prefix}-{i}" for i in range(count)]
    rng = np.random.default_rng(count + version)
    inputs = rng.normal(size=(count, len(FEATURES))) + shift
    answered = list(predictions) if predictions is not None else ["1"] * count
    columns: dict[str, Any] = {
        "request_id": pa.array(ids),
        "row": pa.array([0] * count, pa.int32()),
        "time": pa.array([datetime.now(UTC)] * count, logfiles.TIME_TYPE),
        "model": pa.array([MODEL] * count),
        "version": pa.array([version] * count, pa.int64()),
        "environment": pa.array([environment] * count),
        "source": pa.array([source] * count),
        "sample_rate": pa.array([rate] * count, pa.float64()),
        "latency_ms": pa.array([0.3] * count, pa.float64()),
        "prediction": pa.array(answered),
        "prediction_value": pa.array([None] * count, pa.float64()),
    }
    for index, name in enumerate(FEATURES):
        columns[f"input.{name}"] = pa.array(inputs[:, index])
    root = client.settings.monitoring_folder
    logfiles.write_table(root, logfiles.PREDICTIONS, MODEL, pa.table(columns))
    return ids


def label(client: Client, ids: list[str], labels: list[str]) -> None:
    table = logfiles.feedback_table(
        ids, labels, source="outcomes.csv", loaded_by="alice", now=time.time()
    )
    logfiles.write_feedback(client.settings.monitoring_folder, MODEL, table)


def gate(results: Sequence[GateResult], start: str) -> GateResult:
    found = [r for r in results if r.gate.startswith(start)]
    assert len(found) == 1, [r.gate for r in results]
    return found[0]


def failed_gates(client: Client, reference: str, to: str) -> list[GateResult]:
    with pytest.raises(GateFailedError) as caught:
        client.promote(reference, to, reason="try")
    return [r for r in caught.value.results if isinstance(r, GateResult) and not r.passed]


# -- how many requests ----------------------------------------------------------------------


def test_too_few_requests_fail_and_enough_pass(make_client: MakeClient, fitted: Any) -> None:
    client = make_client("min_live_requests = 100")
    two_versions(client, fitted)
    # 40 logged at a 50% sample rate stand for 80 requests.
    log_traffic(client, 2, "staging", 40, rate=0.5)
    found = gate(client.check_promotion(f"{MODEL}:2", "prod"), "at least 100 live requests")
    assert not found.passed
    assert found.gate == "at least 100 live requests in staging"
    assert "80 requests of version 2" in found.detail and "40 logged" in found.detail
    assert [r.gate for r in failed_gates(client, f"{MODEL}:2", "prod")] == [found.gate]
    # Traffic of other versions, of other environments and of batch runs does not count.
    log_traffic(client, 1, "staging", 50)
    log_traffic(client, 2, "dev", 50)
    log_traffic(client, 2, "staging", 50, source="batch")
    assert not gate(client.check_promotion(f"{MODEL}:2", "prod"), "at least 100").passed
    log_traffic(client, 2, "staging", 10, rate=0.5)
    found = gate(client.check_promotion(f"{MODEL}:2", "prod"), "at least 100")
    assert found.passed and "100 requests of version 2" in found.detail
    outcome = client.promote(f"{MODEL}:2", "prod", reason="served enough")
    assert outcome.event is not None and outcome.event.to_version == 2
    assert gate(outcome.gates, "at least 100").passed


def test_shadow_traffic_counts_in_staging_and_in_prod(make_client: MakeClient, fitted: Any) -> None:
    client = make_client("min_live_requests = 60")
    two_versions(client, fitted)
    log_traffic(client, 2, "staging", 30, source="shadow")
    log_traffic(client, 2, "prod", 20, source="shadow")
    log_traffic(client, 2, "prod", 50)  # served in prod: only a shadow of prod counts there
    found = gate(client.check_promotion(f"{MODEL}:2", "prod"), "at least 60")
    assert not found.passed and "50 requests" in found.detail and "50 as a shadow" in found.detail
    log_traffic(client, 2, "prod", 10, source="shadow")
    found = gate(client.check_promotion(f"{MODEL}:2", "prod"), "at least 60")
    assert found.passed and "60 requests" in found.detail and "60 as a shadow" in found.detail


def test_no_logs_at_all_fail_naming_the_folder_and_the_shared_root(
    make_client: MakeClient, fitted: Any
) -> None:
    client = make_client("min_live_requests = 1")
    two_versions(client, fitted)
    (found,) = failed_gates(client, f"{MODEL}:2", "prod")
    assert f"no prediction log of {MODEL} in {client.settings.monitoring_folder}" in found.detail
    assert "[monitoring] root" in found.detail


def test_gates_off_read_no_log_and_on_a_damaged_log_fails_the_gate_naming_it(
    make_client: MakeClient, fitted: Any
) -> None:
    client = make_client("")
    two_versions(client, fitted)
    relative = logfiles.model_folder(logfiles.PREDICTIONS, MODEL)
    folder = Path(client.settings.monitoring_folder) / relative / "date=2030-01-01"
    folder.mkdir(parents=True)
    damaged = folder / "1-2-3.parquet"
    damaged.write_bytes(b"not parquet at all")
    results = client.check_promotion(f"{MODEL}:2", "prod")
    assert not [r for r in results if "live" in r.gate] and all(r.passed for r in results)
    client = make_client("min_live_requests = 1")
    (found,) = failed_gates(client, f"{MODEL}:2", "prod")
    assert str(damaged) in found.detail


# -- drift -------------------------------------------------------------------------------


def test_drifted_traffic_fails_max_live_drift(make_client: MakeClient, fitted: Any) -> None:
    client = make_client("max_live_drift = 0.2")
    two_versions(client, fitted)
    log_traffic(client, 2, "staging", 400)
    found = gate(client.check_promotion(f"{MODEL}:2", "prod"), "live drift")
    assert found.gate == "live drift (PSI) <= 0.2 in staging"
    assert found.passed, found.detail
    assert "over 3 features and 400 requests" in found.detail
    # The same customers arriving with every feature two standard deviations higher.
    log_traffic(client, 2, "staging", 1600, shift=2.0)
    (found,) = failed_gates(client, f"{MODEL}:2", "prod")
    assert found.gate.startswith("live drift")
    psi = float(found.detail.split()[2])
    assert psi > 0.2 and "over 3 features and 2,000 requests" in found.detail


def test_drift_without_traffic_fails_saying_so(make_client: MakeClient, fitted: Any) -> None:
    client = make_client("max_live_drift = 0.2")
    two_versions(client, fitted)
    log_traffic(client, 1, "prod", 10)  # logs exist, but none of the candidate
    (found,) = failed_gates(client, f"{MODEL}:2", "prod")
    assert found.detail.startswith("no logged traffic of version 2 in staging")


# -- live metric against the incumbent -----------------------------------------------------


def _labelled(client: Client, version: int, environment: str, right: int, wrong: int) -> None:
    count = right + wrong
    ids = log_traffic(client, version, environment, count, predictions=["1"] * count)
    label(client, ids, ["1"] * right + ["0"] * wrong)


def test_a_live_metric_worse_than_the_incumbents_fails(
    make_client: MakeClient, fitted: Any
) -> None:
    client = make_client("live_beats_incumbent = true")
    two_versions(client, fitted)
    _labelled(client, 1, "prod", right=45, wrong=5)  # 0.9 live in prod
    _labelled(client, 2, "staging", right=30, wrong=20)  # 0.6 live in staging
    (found,) = failed_gates(client, f"{MODEL}:2", "prod")
    assert found.gate == "live accuracy at least the incumbent's"
    assert "0.6 on 50 labelled (version 2) vs" in found.detail
    assert "vs 0.9 on 50 labelled (version 1 in prod)" in found.detail
    _labelled(client, 2, "staging", right=150, wrong=0)  # now 180 of 200: 0.9
    found = gate(client.check_promotion(f"{MODEL}:2", "prod"), "live accuracy")
    assert found.passed and "0.9 on 200 labelled" in found.detail


def test_no_labels_fail_the_live_metric_gate_saying_whose(
    make_client: MakeClient, fitted: Any
) -> None:
    client = make_client("live_beats_incumbent = true")
    two_versions(client, fitted)
    log_traffic(client, 1, "prod", 20)
    log_traffic(client, 2, "staging", 20)
    (found,) = failed_gates(client, f"{MODEL}:2", "prod")
    assert "no labelled traffic of version 2 in staging, or as a shadow in prod" in found.detail
    assert "no labelled traffic of version 1 in prod" in found.detail
    assert "neither has labels" in found.detail
    _labelled(client, 2, "staging", right=10, wrong=0)
    (found,) = failed_gates(client, f"{MODEL}:2", "prod")
    assert found.detail == "no labelled traffic of version 1 in prod"


def test_with_nothing_in_place_the_live_metric_gate_passes(
    make_client: MakeClient, fitted: Any
) -> None:
    client = make_client("live_beats_incumbent = true")
    register(client, fitted)
    client.promote(f"{MODEL}:1", "staging", reason="first")
    found = gate(client.check_promotion(f"{MODEL}:1", "prod"), "live accuracy")
    assert found.passed and found.detail == "no version in place"

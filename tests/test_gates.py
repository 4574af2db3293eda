"""Gates: each one passes or fails with the numbers behind it."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelrail import environments
from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.entities import GateResult, ModelVersion
from modelrail.errors import GateFailedError
from modelrail.gates import GateContext, evaluate
from modelrail.policy import GatePolicy
from tests.test_environments import compiled_label, compiled_sha256, damage

MODEL = "pets-classifier"
Data = tuple[pd.DataFrame, pd.Series]


def gate_results(error: GateFailedError) -> list[GateResult]:
    """Every gate result a GateFailedError carries."""
    return [r for r in error.results if isinstance(r, GateResult)]


@pytest.fixture(scope="module")
def data() -> Data:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def _fit(X: pd.DataFrame, y: pd.Series) -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


@pytest.fixture(scope="module")
def fitted(data: Data) -> Any:
    return _fit(*data)


MakeClient = Callable[[str], Client]


@pytest.fixture
def make_client(store_url: str, tmp_path: Path) -> Iterator[MakeClient]:
    """A client with the default chain and the given ``[environments]`` policy text."""
    made: list[Client] = []

    def make(policy: str) -> Client:
        init_project(tmp_path)
        toml = "[environments]\n" + policy
        (tmp_path / "modelrail.toml").write_text(toml, encoding="utf-8")
        settings = load_settings(cwd=tmp_path, environ={}, create=False)
        made.append(Client(store_url=store_url, settings=settings, user="alice"))
        return made[-1]

    yield make
    for one in made:
        one.close()


def log_version(
    client: Client,
    model: Any,
    X: pd.DataFrame,
    metrics: dict[str, float],
    test: pd.DataFrame | None = None,
) -> ModelVersion:
    with client.start_run("pets") as run:
        if test is not None:
            run.log_dataset(test, role="test", name="pets")
        run.log_metrics(metrics)
        return run.log_model(model, MODEL, input_example=X[:5])


def gates(client: Client, reference: str, to: str = "staging") -> dict[str, GateResult]:
    return {g.gate: g for g in client.environment_service.check(reference, to)}


def failed_gates(client: Client, reference: str, to: str = "staging") -> list[GateResult]:
    """Promote, expecting GateFailedError, and return the failing gates; nothing changed."""
    board, history = client.board(), client.history()
    with pytest.raises(GateFailedError) as caught:
        client.promote(reference, to=to)
    assert client.board() == board and client.history() == history
    return [r for r in gate_results(caught.value) if not r.passed]


# -- metric thresholds ---------------------------------------------------------------------

THRESHOLDS = (
    "[environments.staging]\n"
    "min = { accuracy = 0.85 }\n"
    "max = { false_positive_rate = 0.1 }\n"
    "signature_compatible = false\n"
    "smoke_test = false\n"
)


def test_min_and_max_thresholds_pass_with_the_values(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(THRESHOLDS)
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.91, "false_positive_rate": 0.05})
    results = gates(client, f"{MODEL}:1")
    assert list(results) == ["min accuracy >= 0.85", "max false_positive_rate <= 0.1"]
    assert results["min accuracy >= 0.85"] == GateResult("min accuracy >= 0.85", True, "0.91")
    assert results["max false_positive_rate <= 0.1"].passed
    assert results["max false_positive_rate <= 0.1"].detail == "0.05"
    outcome = client.promote(f"{MODEL}:1", to="staging")
    assert outcome.gates == tuple(results.values())


def test_a_value_on_the_bound_passes(make_client: MakeClient, data: Data, fitted: Any) -> None:
    client = make_client(THRESHOLDS)
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.85, "false_positive_rate": 0.1})
    assert all(g.passed for g in gates(client, f"{MODEL}:1").values())


def test_min_and_max_thresholds_fail_with_the_values(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(THRESHOLDS)
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.8123, "false_positive_rate": 0.25})
    assert [(g.gate, g.detail) for g in failed_gates(client, f"{MODEL}:1")] == [
        ("min accuracy >= 0.85", "0.8123"),
        ("max false_positive_rate <= 0.1", "0.25"),
    ]


def test_threshold_on_a_metric_the_version_lacks_fails_naming_it(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(THRESHOLDS)
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.91})
    with pytest.raises(GateFailedError, match=r"\(max false_positive_rate <= 0\.1\)") as caught:
        client.promote(f"{MODEL}:1", to="staging")
    failed = [r for r in gate_results(caught.value) if not r.passed]
    assert [(r.gate, r.detail) for r in failed] == [
        ("max false_positive_rate <= 0.1", "version 1 has no metric 'false_positive_rate'")
    ]


def test_a_version_registered_outside_a_run_has_no_metrics_to_pass(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(THRESHOLDS)
    X, _ = data
    client.register_model(fitted, MODEL, input_example=X[:5])
    assert [g.detail for g in failed_gates(client, f"{MODEL}:1")] == [
        "version 1 has no metric 'accuracy'",
        "version 1 has no metric 'false_positive_rate'",
    ]


# -- beats the incumbent ------------------------------------------------------------------


def beats(margin: float = 0.0) -> str:
    return (
        'primary_metric = "recall"\n'
        "[environments.staging]\nbeat_incumbent = true\n"
        f"margin = {margin}\nsignature_compatible = false\nsmoke_test = false\n"
    )


def _incumbent(client: Client, fitted: Any, X: pd.DataFrame, recall: float) -> None:
    log_version(client, fitted, X, {"recall": recall}, test=X)
    client.promote(f"{MODEL}:1", to="staging")


def test_beats_incumbent_passes_when_nothing_is_in_place(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(beats(0.0))
    X, _ = data
    log_version(client, fitted, X, {"recall": 0.5}, test=X)
    result = gates(client, f"{MODEL}:1")["beats incumbent on recall"]
    assert (result.passed, result.detail) == (True, "no version in place")


def test_beats_incumbent_passes_with_a_better_metric_on_the_same_test_data(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(beats(0.0))
    X, _ = data
    _incumbent(client, fitted, X, recall=0.9)
    log_version(client, fitted, X, {"recall": 0.92}, test=X)
    outcome = client.promote(f"{MODEL}:2", to="staging")
    assert outcome.gates == (
        GateResult("beats incumbent on recall", True, "0.92 vs 0.9 (version 1)"),
    )


def test_beats_incumbent_fails_with_a_worse_metric(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(beats(0.0))
    X, _ = data
    _incumbent(client, fitted, X, recall=0.9)
    log_version(client, fitted, X, {"recall": 0.88}, test=X)
    assert failed_gates(client, f"{MODEL}:2") == [
        GateResult("beats incumbent on recall", False, "0.88 vs 0.9 (version 1)")
    ]


def test_beats_incumbent_needs_the_margin(make_client: MakeClient, data: Data, fitted: Any) -> None:
    client = make_client(beats(0.05))
    X, _ = data
    _incumbent(client, fitted, X, recall=0.9)
    log_version(client, fitted, X, {"recall": 0.92}, test=X)
    log_version(client, fitted, X, {"recall": 0.96}, test=X)
    assert failed_gates(client, f"{MODEL}:2") == [
        GateResult("beats incumbent on recall by 0.05", False, "0.92 vs 0.9 (version 1)")
    ]
    result = gates(client, f"{MODEL}:3")["beats incumbent on recall by 0.05"]
    assert (result.passed, result.detail) == (True, "0.96 vs 0.9 (version 1)")


def test_beats_incumbent_by_exactly_the_margin_passes(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    # "at least the incumbent plus the margin": 0.95 >= 0.9 + 0.05, although 0.9 + 0.05 is
    # 0.9500000000000001 in binary floating point.
    client = make_client(beats(0.05))
    X, _ = data
    _incumbent(client, fitted, X, recall=0.9)
    log_version(client, fitted, X, {"recall": 0.95}, test=X)
    result = gates(client, f"{MODEL}:2")["beats incumbent on recall by 0.05"]
    assert (result.passed, result.detail) == (True, "0.95 vs 0.9 (version 1)")


def test_beats_incumbent_fails_on_different_test_data_naming_both_versions(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(beats(0.0))
    X, _ = data
    _incumbent(client, fitted, X, recall=0.9)
    # Same schema, other values: the next minor version of the test set.
    other = X.assign(**{"mean radius": X["mean radius"] + 1.0})
    log_version(client, fitted, X, {"recall": 0.99}, test=other)
    assert failed_gates(client, f"{MODEL}:2") == [
        GateResult(
            "beats incumbent on recall",
            False,
            "not comparable: measured on different test data "
            "(version 2: test pets/test 1.1, version 1: test pets/test 1.0)",
        )
    ]
    log_version(client, fitted, X, {"recall": 0.99})  # no test data logged at all
    detail = gates(client, f"{MODEL}:3")["beats incumbent on recall"].detail
    assert detail == (
        "not comparable: measured on different test data "
        "(version 3: test not logged, version 1: test pets/test 1.0)"
    )


def test_beats_incumbent_fails_when_a_version_lacks_the_primary_metric(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(beats(0.0))
    X, _ = data
    _incumbent(client, fitted, X, recall=0.9)
    log_version(client, fitted, X, {"accuracy": 0.99}, test=X)
    assert failed_gates(client, f"{MODEL}:2") == [
        GateResult("beats incumbent on recall", False, "version 2 has no metric 'recall'")
    ]


# -- signature ----------------------------------------------------------------------------

SIGNATURE = "[environments.staging]\nsmoke_test = false\n"


def _signature_client(make_client: MakeClient, fitted: Any, X: pd.DataFrame) -> Client:
    client = make_client(SIGNATURE)
    log_version(client, fitted, X, {"accuracy": 0.9})
    client.promote(f"{MODEL}:1", to="staging")
    return client


def test_signature_with_the_same_columns_passes(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    X, _ = data
    client = _signature_client(make_client, fitted, X)
    log_version(client, fitted, X, {"accuracy": 0.9})
    assert gates(client, f"{MODEL}:2")["signature compatible"] == GateResult(
        "signature compatible", True, "same 30 columns"
    )


def test_signature_with_a_removed_column_fails_naming_it(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    X, y = data
    client = _signature_client(make_client, fitted, X)
    fewer = X.drop(columns=["mean radius", "worst area"])
    log_version(client, _fit(fewer, y), fewer, {"accuracy": 0.9})
    assert failed_gates(client, f"{MODEL}:2") == [
        GateResult("signature compatible", False, "removed mean radius, worst area")
    ]


def test_signature_with_a_retyped_column_fails_naming_it(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    X, y = data
    client = _signature_client(make_client, fitted, X)
    retyped = X.assign(**{"mean radius": X["mean radius"].round().astype("int64")})
    log_version(client, _fit(retyped, y), retyped, {"accuracy": 0.9})
    assert failed_gates(client, f"{MODEL}:2") == [
        GateResult("signature compatible", False, "retyped mean radius float64 -> int64")
    ]


def test_signature_with_an_added_column_passes_and_says_so(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    X, y = data
    client = _signature_client(make_client, fitted, X)
    more = X.assign(extra=1.0)
    log_version(client, _fit(more, y), more, {"accuracy": 0.9})
    outcome = client.promote(f"{MODEL}:2", to="staging")
    assert outcome.gates == (GateResult("signature compatible", True, "adds extra"),)


# -- runtime compatibility -----------------------------------------------------------------

RUNTIME_ONLY = GatePolicy(
    require_previous=False, signature_compatible=False, smoke_test=False, runtime_compatible=True
)


def _context(client: Client, candidate: ModelVersion) -> GateContext:
    return GateContext(
        candidate=candidate,
        candidate_run=None,
        incumbent=None,
        incumbent_run=None,
        previous_environment=None,
        entered_previous_at=None,
        seconds_in_previous=0.0,
        primary_metric="accuracy",
        artifacts=client.artifacts,
        now=time.time(),
    )


def test_runtime_compatible_passes_with_the_installed_versions(
    sqlite_client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    version = log_version(sqlite_client, fitted, X, {"accuracy": 0.9})
    sklearn, numpy = metadata.version("scikit-learn"), metadata.version("numpy")
    (result,) = evaluate(RUNTIME_ONLY, _context(sqlite_client, version))
    assert result.gate == "runtime compatible" and result.passed
    assert f"numpy {numpy}" in result.detail and f"scikit-learn {sklearn}" in result.detail


def test_runtime_compatible_names_the_mismatched_packages(
    sqlite_client: Client, data: Data, fitted: Any
) -> None:
    X, _ = data
    version = log_version(sqlite_client, fitted, X, {"accuracy": 0.9})
    packages = dict(version.flavor_details["packages"])
    packages.update({"scikit-learn": "0.19.2", "no-such-package-xyz": "1.0"})
    claimed = dataclasses.replace(
        version, flavor_details={**version.flavor_details, "packages": packages}
    )
    (result,) = evaluate(RUNTIME_ONLY, _context(sqlite_client, claimed))
    installed = metadata.version("scikit-learn")
    assert not result.passed
    assert result.detail == (
        "no-such-package-xyz 1.0 recorded, not installed here; "
        f"scikit-learn 0.19.2 recorded, {installed} here"
    )


def test_default_prod_checks_the_runtime(client: Client, data: Data, fitted: Any) -> None:
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.9})
    client.promote(f"{MODEL}:1", to="staging")
    result = gates(client, f"{MODEL}:1", to="prod")["runtime compatible"]
    assert result.passed and f"scikit-learn {metadata.version('scikit-learn')}" in result.detail


# -- smoke test ------------------------------------------------------------------------------


def test_smoke_test_passes_with_the_latency(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client("[environments.staging]\nsmoke_latency_ms = 5000\n")
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.9})
    result = gates(client, f"{MODEL}:1")["smoke test within 5000 ms"]
    assert result.passed
    assert result.detail.startswith("sha256 verified, predicted 5 rows in ")
    assert result.detail.endswith(" ms")


def test_smoke_test_predicts_through_the_form_serving_and_batch_load(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client("[environments.staging]\nsmoke_latency_ms = 5000\n")
    X, y = data
    log_version(client, fitted, X, {"accuracy": 0.9})  # a linear pipeline: a compiled form
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    log_version(client, forest, X, {"accuracy": 0.9})  # served by the fastest tree form
    compiled = gates(client, f"{MODEL}:1")["smoke test within 5000 ms"]
    assert compiled.passed
    assert re.fullmatch(
        r"sha256 verified, predicted 5 rows in [0-9.]+ ms; "
        r"as served \((compiled-linear|onnxruntime)\) in [0-9.]+ ms",
        compiled.detail,
    )
    forest_gate = gates(client, f"{MODEL}:2")["smoke test within 5000 ms"]
    assert forest_gate.passed
    assert re.search(r"; as served \((onnxruntime|treelite|sklearn)\) in ", forest_gate.detail)


@pytest.mark.parametrize("blob", ["model file", "compiled form"])
def test_smoke_test_fails_on_a_damaged_model_file_or_compiled_form(
    make_client: MakeClient, data: Data, fitted: Any, blob: str
) -> None:
    """``load_model`` reads the model file; serving and batch, the stored compiled form."""
    client = make_client("[environments.staging]\nsignature_compatible = false\n")
    X, _ = data
    version = log_version(client, fitted, X, {"accuracy": 0.9})
    sha256 = version.artifact_sha256 if blob == "model file" else compiled_sha256(version)
    path = damage(client, sha256)
    (failed,) = failed_gates(client, f"{MODEL}:1")
    assert failed.gate == "smoke test within 500 ms"
    shown = (
        f"{MODEL}:1" if blob == "model file" else f"as served: artifact {compiled_label(version)}"
    )
    if blob == "model file":
        shown = f"artifact {shown}"
    assert failed.detail.startswith(f"{shown} ({path}) has sha256 ")
    assert f"but the registry recorded {sha256[:12]}" in failed.detail
    assert failed.detail.endswith("refusing to load it")


def test_smoke_test_sends_the_example_through_the_servers_parsing_and_batch(
    make_client: MakeClient,
) -> None:
    """A pipeline that drops a column the example holds numbers and text in: the model scores
    the example, but a server would refuse it (a text column given a number), so the gate
    fails naming the request path, and a version that passes it serves."""
    from sklearn.compose import ColumnTransformer

    client = make_client("[environments.staging]\nsignature_compatible = false\n")
    X = pd.DataFrame({"x": [0.1, 0.9, 0.4, 0.8, 0.2, 0.7], "code": [1, "A", "B", 2, "C", "D"]})
    y = (X["x"] > 0.5).astype(int)
    keep_x = ColumnTransformer([("x", "passthrough", ["x"])])
    model = make_pipeline(keep_x, LogisticRegression()).fit(X, y)
    log_version(client, model, X, {"accuracy": 0.9})
    (failed,) = failed_gates(client, f"{MODEL}:1")
    assert failed.gate == "smoke test within 500 ms"
    assert failed.detail.startswith("a JSON request: row 0, column 'code': expected text, got int")

    as_text = X.assign(code=X["code"].astype(str))
    log_version(client, model.fit(as_text, y), as_text, {"accuracy": 0.9})
    assert gates(client, f"{MODEL}:2")["smoke test within 500 ms"].passed


def test_smoke_test_fails_over_the_latency_budget(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(
        "[environments.staging]\nsignature_compatible = false\nsmoke_latency_ms = 0\n"
    )
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.9})
    (failed,) = failed_gates(client, f"{MODEL}:1")
    assert failed.gate == "smoke test within 0 ms"
    assert failed.detail.startswith("sha256 verified, predicted 5 rows in ")


# -- time in the previous environment ---------------------------------------------------------


class Clock:
    """``time`` as modelrail.environments sees it, ``offset`` seconds in the future."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_min_time_in_previous_environment(
    make_client: MakeClient, data: Data, fitted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client("[environments.staging]\nmin_hours_in_previous = 24\nsmoke_test = false\n")
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.9})
    assert failed_gates(client, f"{MODEL}:1") == [
        GateResult("at least 24 h in dev", False, "0.00 h there")
    ]
    monkeypatch.setattr(environments, "time", Clock(23 * 3600))
    assert failed_gates(client, f"{MODEL}:1")[0].detail == "23.00 h there"
    monkeypatch.setattr(environments, "time", Clock(25 * 3600))
    outcome = client.promote(f"{MODEL}:1", to="staging")
    time_gate = next(g for g in outcome.gates if g.gate == "at least 24 h in dev")
    assert (time_gate.passed, time_gate.detail) == (True, "25.00 h there")


def test_min_time_counts_only_the_time_the_version_was_held(
    make_client: MakeClient, data: Data, fitted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client("[environments.staging]\nmin_hours_in_previous = 24\nsmoke_test = false\n")
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.9})
    log_version(client, fitted, X, {"accuracy": 0.9})  # replaces version 1 in dev at once
    monkeypatch.setattr(environments, "time", Clock(25 * 3600))
    (gate,) = failed_gates(client, f"{MODEL}:1")
    assert gate.detail.endswith("h there") and float(gate.detail.split()[0]) < 0.01
    outcome = client.promote(f"{MODEL}:2", to="staging")
    assert all(g.passed for g in outcome.gates)


def test_min_time_in_previous_fails_for_a_version_never_there(
    make_client: MakeClient, data: Data, fitted: Any
) -> None:
    client = make_client(
        "auto_enter_first = false\n"
        "[environments.staging]\nrequire_previous = false\nmin_hours_in_previous = 1\n"
        "smoke_test = false\n"
    )
    X, _ = data
    log_version(client, fitted, X, {"accuracy": 0.9})
    assert failed_gates(client, f"{MODEL}:1") == [
        GateResult("at least 1 h in dev", False, "never was in dev")
    ]

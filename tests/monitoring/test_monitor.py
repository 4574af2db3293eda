"""``Client.monitor`` on a registered model's logged traffic: drift against its reference
profile, live metrics on late and repeated labels, windows, versions, and what it says when
there is nothing to judge."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import InvalidInputError, ModelNotFoundError
from modelrail.monitoring import logfiles
from tests.monitoring.conftest import (
    DAY,
    NOW,
    Registered,
    frame,
    log_traffic,
    register_churn,
)


def _labels(client: Client, path: str, ids: list[str], labels: list[str]) -> None:
    pd.DataFrame({"request_id": ids, "outcome": labels}).to_parquet(path)
    client.load_feedback("churn", inputs=[path], id_columns=["request_id"], label_column="outcome")


def test_usual_traffic_is_ok_and_a_shifted_number_and_category_are_alerts(
    client: Client, registered: Registered
) -> None:
    log_traffic(client, registered.churn, frame(3000, 10), at=NOW - 2 * DAY, prefix="a")
    usual = client.monitor("churn@dev", since=NOW - 3 * DAY, until=NOW - DAY)
    assert usual.status == "ok", usual.to_json()
    assert [(f.feature, f.status) for f in usual.overall.features] == [
        ("tenure", "ok"),
        ("plan", "ok"),
    ]
    assert usual.overall.prediction is not None and usual.overall.prediction.status == "ok"
    assert (usual.version, usual.reference_label, usual.alerts) == (1, "train 1.0", ())

    shifted = frame(3000, 11, shift=8.0, plans=(0.1, 0.5, 0.4))
    log_traffic(client, registered.churn, shifted, at=NOW - DAY / 2, prefix="b")
    report = client.monitor("churn@dev", since=NOW - DAY, until=NOW)
    tenure, plan = report.overall.features
    assert (tenure.status, tenure.threshold, tenure.statistic) == ("alert", ">= 0.2", "ks")
    assert (plan.status, plan.statistic, plan.kind) == ("alert", "js", "categorical")
    assert plan.missing_rate == pytest.approx(0.4, abs=0.03)
    assert report.status == "alert"
    assert report.alerts[:2] == (
        f"tenure: drift (PSI) {tenure.psi:.3g} >= 0.2",
        f"plan: drift (PSI) {plan.psi:.3g} >= 0.2",
    )


def test_live_accuracy_uses_the_latest_label_of_each_prediction_even_a_late_one(
    client: Client, registered: Registered, tmp_path: Path
) -> None:
    features = frame(400, 12)
    predicted = registered.churn.predict(features).tolist()
    truth = [p if i % 4 else ("no" if p == "yes" else "yes") for i, p in enumerate(predicted)]
    ids = [f"r{i}" for i in range(400)]
    # Labels of the first 100 requests come before their predictions are logged.
    _labels(client, f"{tmp_path}/early.parquet", ids[:100], truth[:100])
    log_traffic(client, registered.churn, features, at=NOW - DAY)
    _labels(client, f"{tmp_path}/late.parquet", ids[100:], truth[100:])
    first = client.monitor("churn@dev", since=NOW - 2 * DAY, until=NOW).overall.metric("accuracy")
    assert first is not None
    assert (first.labelled, first.value) == (400, pytest.approx(0.75))
    assert first.reference == pytest.approx(
        accuracy_score(registered.churn.predict(frame(500, 2)), _test_truth())
    )
    assert (first.threshold, first.status) == ("< 0.75", "ok")
    # Corrected labels for the wrong quarter: the newest label wins.
    wrong = [i for i in range(400) if i % 4 == 0]
    _labels(
        client, f"{tmp_path}/fixed.parquet", [ids[i] for i in wrong], [predicted[i] for i in wrong]
    )
    fixed = client.monitor("churn@dev", since=NOW - 2 * DAY, until=NOW).overall.metric("accuracy")
    assert fixed is not None and (fixed.labelled, fixed.value) == (400, 1.0)
    # Every load is kept.
    assert len(list((tmp_path / "monitoring" / "feedback").rglob("*.parquet"))) == 3


def _test_truth() -> list[str]:
    from tests.monitoring.conftest import churned

    return churned(frame(500, 2), 4).tolist()


def test_a_live_metric_below_the_policy_bound_is_an_alert(
    client: Client, registered: Registered, tmp_path: Path
) -> None:
    features = frame(200, 13)
    ids = log_traffic(client, registered.churn, features, at=NOW - DAY)
    predicted = registered.churn.predict(features).tolist()
    flipped = ["no" if p == "yes" else "yes" for p in predicted]
    _labels(client, f"{tmp_path}/labels.parquet", ids, flipped[:100] + predicted[100:])
    report = client.monitor("churn@dev", since=NOW - 2 * DAY, until=NOW)
    accuracy = report.overall.metric("accuracy")
    assert accuracy is not None
    assert (accuracy.value, accuracy.status, accuracy.threshold) == (0.5, "alert", "< 0.75")
    assert "live accuracy 0.5 < 0.75 (200 labelled)" in report.alerts


def test_regression_live_metrics_against_the_run(
    client: Client, registered: Registered, tmp_path: Path
) -> None:
    features = frame(300, 14)[["tenure"]].assign(size=np.arange(300) % 7)
    ids = log_traffic(client, registered.price, features, at=NOW - DAY, name="price")
    truth = 3.0 * features["tenure"] + features["size"] + 10.0  # off by 10: an alert (mae > 4)
    pd.DataFrame({"id": ids, "price": truth}).to_csv(tmp_path / "prices.csv", index=False)
    client.load_feedback(
        "price", inputs=[str(tmp_path / "prices.csv")], id_columns=["id"], label_column="price"
    )
    report = client.monitor("price@dev", since=NOW - 2 * DAY, until=NOW)
    live = {m.name: m for m in report.overall.live}
    assert list(live) == ["mae", "rmse", "r2"]
    expected = mean_absolute_error(truth, registered.price.predict(features))
    assert live["mae"].value == pytest.approx(expected)
    assert live["mae"].reference == pytest.approx(registered.price_metrics["mae"])
    assert (live["mae"].status, live["mae"].threshold) == ("alert", "> 4")
    assert report.overall.prediction is not None
    assert report.overall.prediction.kind == "numeric"  # a regressor's predictions are numbers


def test_windows_are_whole_days_each_judged_by_the_version_that_answered(
    client: Client,
) -> None:
    # Version 2 was trained on what version 1 would call drifted: each enters dev in turn.
    first = register_churn(client, "switch", frame(1500, 30), 31)
    second = register_churn(client, "switch", frame(1500, 32, shift=10.0), 33)
    day = np.floor(NOW / DAY) * DAY
    usual, shifted = frame(1000, 15), frame(1000, 16, shift=10.0)
    log_traffic(client, first, usual, at=day - 2 * DAY + 60, name="switch", prefix="a")
    log_traffic(client, second, shifted, at=day - DAY + 60, name="switch", version=2, prefix="b")
    log_traffic(client, first, frame(50, 17), at=day - DAY + 60, name="switch", prefix="c")
    # A shadow's answers in dev are not what dev answered.
    log_traffic(client, second, usual, at=day - 2 * DAY, name="switch", version=2, source="shadow")
    report = client.monitor("switch@dev", since=day - 2 * DAY - 3600, until=day, window_seconds=DAY)
    assert [(w.start, w.end) for w in report.windows] == [
        (day - 2 * DAY - 3600, day - 2 * DAY),
        (day - 2 * DAY, day - DAY),
        (day - DAY, day),
    ]
    quiet, before, after = report.windows
    assert (quiet.rows, quiet.status) == (0, "no data")
    assert (before.rows, before.versions, before.reference_version) == (1000, (1,), 1)
    assert (after.rows, after.versions, after.reference_version) == (1050, (1, 2), 2)
    # Each day judged by its own version's training data: no drift in either.
    assert before.feature("tenure").status == "ok"  # type: ignore[union-attr]
    assert after.feature("tenure").status == "ok"  # type: ignore[union-attr]
    # Over both days, against the version dev holds now (2), the first day's inputs drifted.
    assert report.version == 2
    assert report.overall.feature("tenure").status == "alert"  # type: ignore[union-attr]
    per_version = [(w.reference_version, w.rows) for w in report.by_version]
    assert per_version == [(1, 1050), (2, 1000)]
    assert report.by_version[1].status == "ok"
    assert report.overall.requests == 2050  # the shadow's answers are left out
    # A version's own traffic in an environment counts what it answered as a shadow too.
    candidate = client.monitor("switch:2", environment="dev", since=day - 3 * DAY, until=day)
    assert (candidate.environment, candidate.version, candidate.overall.rows) == ("dev", 2, 2000)
    with pytest.raises(InvalidInputError, match="leave out environment"):
        client.monitor("switch@dev", environment="dev")


def test_nothing_logged_is_a_report_without_data(client: Client) -> None:
    report = client.monitor("churn@dev", since=NOW - DAY, until=NOW)
    assert (report.overall.rows, report.status, report.version) == (0, "no data", 1)
    assert all(f.status == "no data" for f in report.overall.features)
    # prod holds nothing and nothing was logged there: still a report, of the latest version.
    assert client.monitor("churn@prod", since=NOW - DAY, until=NOW).status == "no data"


def test_a_version_without_a_reference_profile_still_gets_live_metrics(
    client: Client, registered: Registered, tmp_path: Path
) -> None:
    # Registered outside a run: no data was logged with it, so no reference profile.
    version = client.register_model(registered.churn, "churn-bare", input_example=frame(5, 18))
    assert client.reference_profile(f"churn-bare:{version.version}") is None
    features = frame(100, 19)
    ids = log_traffic(client, registered.churn, features, at=NOW - DAY, name="churn-bare")
    predicted = registered.churn.predict(features).tolist()
    pd.DataFrame({"id": ids, "y": predicted}).to_parquet(tmp_path / "y.parquet")
    client.load_feedback(
        "churn-bare", inputs=[str(tmp_path / "y.parquet")], id_columns=["id"], label_column="y"
    )
    report = client.monitor("churn-bare:1", since=NOW - 2 * DAY, until=NOW)
    assert report.reference_label == "no reference"
    assert {f.status for f in report.overall.features} == {"no reference"}
    accuracy = report.overall.metric("accuracy")
    assert accuracy is not None and (accuracy.value, accuracy.reference) == (1.0, None)
    assert report.status == "ok"  # live metrics fine, drift not judged


def test_bad_ranges_and_unknown_models_are_refused(client: Client) -> None:
    with pytest.raises(InvalidInputError, match="since must be before until"):
        client.monitor("churn@dev", since=NOW, until=NOW - 1)
    with pytest.raises(InvalidInputError, match="more than 1000 windows"):
        client.monitor("churn@dev", since=NOW - 30 * DAY, until=NOW, window_seconds=60)
    with pytest.raises(ModelNotFoundError):
        client.monitor("nobody@dev", since=NOW - DAY, until=NOW)


def test_a_million_logged_rows_are_judged_in_seconds(
    client: Client, registered: Registered
) -> None:
    rows = 1_000_000
    rng = np.random.default_rng(20)
    chunk = rows // 4
    for part in range(4):
        at = NOW - DAY + part * 3600
        times = logfiles._moment(at)
        table = pa.table(
            {
                "request_id": pa.array([f"m{part}-{i}" for i in range(chunk)]),
                "row": pa.array(np.zeros(chunk, dtype=np.int32)),
                "time": pa.array([times] * chunk, logfiles.TIME_TYPE),
                "model": pa.array(["churn"] * chunk),
                "version": pa.array(np.ones(chunk, dtype=np.int64)),
                "environment": pa.array(["dev"] * chunk),
                "source": pa.array(["serve"] * chunk),
                "sample_rate": pa.array(np.full(chunk, 0.5)),
                "latency_ms": pa.array(np.ones(chunk)),
                "prediction": pa.array(rng.choice(["no", "yes"], chunk)),
                "prediction_value": pa.array(rng.random(chunk)),
                "input.tenure": pa.array(rng.normal(30, 8, chunk)),
                "input.plan": pa.array(rng.choice(["basic", "pro"], chunk)),
            }
        )
        logfiles.write_table(client.monitoring_root, "predictions", "churn", table)
    started = time.perf_counter()
    report = client.monitor("churn@dev", since=NOW - 2 * DAY, until=NOW, window_seconds=3600)
    took = time.perf_counter() - started
    assert report.overall.rows == rows and report.overall.requests == 2 * rows
    assert took < 20, f"{took:.1f} s for a million rows"


def test_the_same_report_from_a_postgresql_store(store_url: str, tmp_path: Path) -> None:
    init_project(tmp_path)
    settings = load_settings(cwd=tmp_path, environ={}, create=False)
    with Client(store_url=store_url, settings=settings, user="tester") as made:
        model = register_churn(made, "churn", frame(1000, 80), 81)
        features = frame(300, 82, shift=9.0)
        ids = log_traffic(made, model, features, at=NOW - DAY)
        labels = tmp_path / "labels.csv"
        truth = model.predict(features).tolist()
        pd.DataFrame({"id": ids, "y": truth}).to_csv(labels, index=False)
        made.load_feedback("churn", inputs=[str(labels)], id_columns=["id"], label_column="y")
        report = made.monitor("churn@dev", since=NOW - 2 * DAY, until=NOW)
    assert report.overall.feature("tenure").status == "alert"  # type: ignore[union-attr]
    accuracy = report.overall.metric("accuracy")
    assert accuracy is not None and (accuracy.value, accuracy.labelled) == (1.0, 300)
    assert accuracy.reference is not None  # the run's value, read from this store

"""Run life cycle and everything logged into a run, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import modelrail
from modelrail.client import Client
from modelrail.entities import ArtifactRecord
from modelrail.errors import (
    InvalidInputError,
    InvalidMetricError,
    ParamConflictError,
    RunNotFoundError,
    RunStateError,
)
from modelrail.tracking.snapshot import ARTIFACT_PREFIX


def test_run_finishes_with_params_metrics_and_tags(client: Client) -> None:
    with client.start_run("pets", architecture="forest", tags={"team": "a"}) as run:
        run.log_params(
            {"n_estimators": 300, "max_depth": 8, "criterion": "gini", "bootstrap": True}
        )
        run.log_metrics({"accuracy": 0.91, "false_positive_rate": 0.05})
        run.set_tag("note", "baseline")
    stored = client.get_run(run.id)
    assert stored.status == "finished"
    assert stored.ended_at is not None and stored.ended_at >= stored.started_at
    assert stored.params == {
        "n_estimators": 300,
        "max_depth": 8,
        "criterion": "gini",
        "bootstrap": True,
    }
    assert stored.metrics == {"accuracy": 0.91, "false_positive_rate": 0.05}
    assert stored.tags == {"team": "a", "note": "baseline"}
    assert stored.architecture == "forest"
    assert stored.experiment == "pets"
    assert stored.user == "tester"


def test_params_keep_their_types_for_building_the_model(client: Client) -> None:
    with client.start_run("pets") as run:
        run.log_params({"n_estimators": np.int64(30), "learning_rate": np.float32(0.5)})
        assert run.params == {"n_estimators": 30, "learning_rate": 0.5}
        assert isinstance(run.params["n_estimators"], int)


def test_exception_inside_with_marks_run_failed_and_reraises(client: Client) -> None:
    with pytest.raises(ZeroDivisionError), client.start_run("pets") as run:
        run.log_metric("accuracy", 0.5)
        _ = 1 / 0
    stored = client.get_run(run.id)
    assert stored.status == "failed"
    assert stored.error is not None and "ZeroDivisionError" in stored.error
    assert stored.metrics == {"accuracy": 0.5}


def test_metric_steps_continue_per_key_and_keep_timestamps(client: Client) -> None:
    with client.start_run("pets") as run:
        for value in (0.9, 0.7, 0.5):
            run.log_metric("loss", value)
        run.log_metric("accuracy", 0.8, step=10)
        run.log_metric("accuracy", 0.7, step=3)  # an earlier step logged late
    history = client.runs.metric_history(run.id, "loss")
    assert [(p.step, p.value) for p in history] == [(0, 0.9), (1, 0.7), (2, 0.5)]
    assert all(p.timestamp > 0 for p in history)
    # The summary is the value at the last step, not the last call.
    assert client.get_run(run.id).metrics == {"loss": 0.5, "accuracy": 0.8}


@pytest.mark.parametrize("bad", ["high", None, [1.0], True, float("nan"), float("inf")])
def test_non_numeric_or_non_finite_metric_is_refused_and_nothing_is_written(
    client: Client, bad: object
) -> None:
    with client.start_run("pets") as run:
        run.log_metric("accuracy", 0.9)
        with pytest.raises(InvalidMetricError, match="precision"):
            run.log_metrics({"accuracy": 0.95, "precision": bad})  # type: ignore[dict-item]
    assert client.get_run(run.id).metrics == {"accuracy": 0.9}
    assert len(client.runs.metric_history(run.id)) == 1


def test_negative_step_is_refused(client: Client) -> None:
    with client.start_run("pets") as run, pytest.raises(InvalidMetricError, match="step"):
        run.log_metric("loss", 1.0, step=-1)


def test_relogging_a_param_with_another_value_is_refused_and_keeps_the_first(
    client: Client,
) -> None:
    with client.start_run("pets") as run:
        run.log_params({"max_depth": 8})
        run.log_params({"max_depth": 8})  # same value: fine
        with pytest.raises(ParamConflictError, match="max_depth"):
            run.log_params({"max_depth": 9, "min_samples_leaf": 2})
    assert client.get_run(run.id).params == {"max_depth": 8}


def test_unstorable_param_value_names_the_parameter(client: Client) -> None:
    with client.start_run("pets") as run, pytest.raises(InvalidInputError, match="'model'"):
        run.log_params({"model": object()})


def test_logging_after_the_run_ended_is_refused(client: Client) -> None:
    with client.start_run("pets") as run:
        pass
    with pytest.raises(RunStateError):
        run.log_metric("accuracy", 1.0)


def test_artifacts_files_folders_text_json_and_figures(client: Client, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = tmp_path / "importance.csv"
    report.write_text("feature,importance\nage,0.4\n")
    folder = tmp_path / "plots"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    with client.start_run("pets") as run:
        run.log_artifact(report)
        run.log_artifact(folder)
        run.log_text("hello", "notes/readme.txt")
        run.log_dict({"threshold": 0.5}, "config.json")
        run.log_figure(figure, "residuals.png")
    plt.close(figure)
    stored = {a.path: a for a in _logged(client.get_run(run.id).artifacts)}
    assert set(stored) == {
        "importance.csv",
        "plots/a.txt",
        "plots/sub/b.txt",
        "notes/readme.txt",
        "config.json",
        "residuals.png",
    }
    read = client.artifacts.read_verified
    assert read(stored["importance.csv"].sha256) == report.read_bytes()
    assert json.loads(read(stored["config.json"].sha256)) == {"threshold": 0.5}
    assert read(stored["residuals.png"].sha256).startswith(b"\x89PNG")


def test_missing_artifact_file_is_named(client: Client, tmp_path: Path) -> None:
    with client.start_run("pets") as run, pytest.raises(InvalidInputError, match=r"nope\.csv"):
        run.log_artifact(tmp_path / "nope.csv")


def test_unknown_run_id_is_a_clear_error(client: Client) -> None:
    with pytest.raises(RunNotFoundError, match="abcdef12"):
        client.get_run("abcdef12")


def test_run_id_prefix_finds_the_run(client: Client) -> None:
    with client.start_run("pets") as run:
        pass
    assert client.get_run(run.id[:8]).id == run.id


def test_active_run_is_visible_inside_the_with_block_only(client: Client) -> None:
    assert modelrail.active_run() is None
    with client.start_run("pets") as run:
        assert modelrail.active_run() is run
    assert modelrail.active_run() is None


def test_invalid_experiment_name_is_refused(client: Client) -> None:
    with pytest.raises(InvalidInputError, match="experiment"):
        client.start_run("no spaces allowed")


def _logged(records: tuple[ArtifactRecord, ...]) -> list[ArtifactRecord]:
    """The artifacts a test logged, without the code snapshot a run from a dirty checkout
    (this one, while it is being worked on) stores too."""
    return [a for a in records if not a.path.startswith(ARTIFACT_PREFIX)]

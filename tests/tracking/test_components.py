"""MAJOR.MINOR labels per lineage: same content, same label; new content, next minor;
new shape, next major."""

from __future__ import annotations

import pandas as pd
import pytest

from modelrail.client import Client
from modelrail.errors import InvalidInputError, UnsupportedDatasetError


def _frame(rows: int, extra: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame({"age": range(rows), "weight": [1.5 * i for i in range(rows)]})
    return frame.assign(colour="black") if extra else frame


def _labels(client: Client, run_id: str) -> dict[str, str]:
    return {role: cv.label for role, cv in client.get_run(run_id).components.items()}


def test_identical_data_gets_its_old_label_back(client: Client) -> None:
    labels = []
    for rows in (10, 12, 10):
        with client.start_run("pets") as run:
            labels.append(run.log_dataset(_frame(rows), name="pets", role="train").label)
    assert labels == ["1.0", "1.1", "1.0"]


def test_new_schema_bumps_the_major_and_old_schema_keeps_counting(client: Client) -> None:
    labels = []
    for rows, extra in ((10, False), (10, True), (11, True), (12, False)):
        with client.start_run("pets") as run:
            labels.append(run.log_dataset(_frame(rows, extra), name="pets", role="train").label)
    assert labels == ["1.0", "2.0", "2.1", "1.1"]


def test_each_dataset_and_role_is_its_own_lineage(client: Client) -> None:
    with client.start_run("pets") as run:
        train = run.log_dataset(_frame(10), name="pets", role="train")
        validation = run.log_dataset(_frame(5), name="pets", role="validation")
        test = run.log_dataset(_frame(5), name="pets", role="test")
        other = run.log_dataset(_frame(7), name="cats", role="train")
    assert [train.label, validation.label, test.label, other.label] == ["1.0"] * 4
    assert validation.fingerprint == test.fingerprint  # same content, different lineage
    assert validation.lineage != test.lineage
    stored = client.get_run(run.id).components
    assert stored["data:train"].details["dataset"] == "cats"  # the role was re-logged
    assert stored["data:train"].details["rows"] == 7


def test_params_minor_for_values_major_for_keys(client: Client) -> None:
    labels = []
    for params in ({"C": 1.0}, {"C": 0.5}, {"C": 1.0}, {"C": 1.0, "penalty": "l2"}):
        with client.start_run("pets") as run:
            run.log_params(params)
        labels.append(_labels(client, run.id)["params"])
    assert labels == ["1.0", "1.1", "1.0", "2.0"]


def test_architecture_bumps_the_code_major(client: Client) -> None:
    labels = []
    for architecture in ("Alpha", "Beta", "Alpha", "Gamma"):
        with client.start_run("pets", architecture=architecture) as run:
            pass
        labels.append(_labels(client, run.id)["code"])
    assert labels == ["1.0", "2.0", "1.0", "3.0"]


def test_every_run_records_code_params_and_environment(client: Client) -> None:
    with client.start_run("pets") as run:
        run.log_params({"C": 1})
    components = client.get_run(run.id).components
    assert {"code", "params", "environment"} <= set(components)
    environment = components["environment"]
    assert environment.details["packages"]["scikit-learn"]
    assert environment.details["python"].count(".") == 2
    assert all(len(cv.fingerprint) == 64 for cv in components.values())


def test_dataset_schema_and_rows_are_kept(client: Client) -> None:
    with client.start_run("pets") as run:
        version = run.log_dataset(_frame(10, extra=True), name="pets", role="test")
    assert version.details["rows"] == 10
    assert version.details["schema"] == [
        ["age", "int64"],
        ["weight", "float64"],
        ["colour", "string"],
    ]


def test_unknown_role_is_refused(client: Client) -> None:
    with client.start_run("pets") as run, pytest.raises(InvalidInputError, match="holdout"):
        run.log_dataset(_frame(3), name="pets", role="holdout")


def test_unsupported_dataset_type_is_named_and_nothing_is_recorded(client: Client) -> None:
    with client.start_run("pets") as run, pytest.raises(UnsupportedDatasetError, match="dict"):
        run.log_dataset({"age": [1, 2]}, name="pets", role="train")
    assert "data:train" not in client.get_run(run.id).components
    assert client.runs.components.versions("data") == []

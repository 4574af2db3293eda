"""Revision 0007: a version's predictor forms record lives beside the immutable version row,
written with it at registration and replaced by ``models compile``, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.errors import ModelVersionNotFoundError


def _model() -> tuple[LogisticRegression, pd.DataFrame]:
    X = pd.DataFrame(np.random.default_rng(1).normal(size=(80, 3)), columns=["a", "b", "c"])
    return LogisticRegression().fit(X, (X["a"] > 0).astype(int)), X


def test_forms_are_stored_with_the_version_and_replaced_by_compile(client: Client) -> None:
    model, X = _model()
    first = client.register_model(model, "linear", input_example=X[:4])
    assert first.forms is not None and first.forms["verified_rows"] > 0
    replaced = client.models.set_forms(
        "linear", 1, {**first.forms, "verified_rows": 7}, created_by="tester"
    )
    assert replaced.forms is not None and replaced.forms["verified_rows"] == 7
    (listed,) = client.list_versions("linear")
    assert listed.forms == replaced.forms
    # The version itself is as it was registered.
    assert (listed.artifact_sha256, listed.signature, listed.created_at) == (
        first.artifact_sha256,
        first.signature,
        first.created_at,
    )
    compiled = client.compile_model("linear:1")
    assert compiled.forms is not None and compiled.forms["verified_rows"] > 7


def test_forms_of_a_version_that_does_not_exist_are_refused(client: Client) -> None:
    model, X = _model()
    client.register_model(model, "linear", input_example=X[:4])
    with pytest.raises(ModelVersionNotFoundError):
        client.models.set_forms("linear", 2, {"tried": []}, created_by="tester")

"""A project for the prediction-log and feedback tests: ``churn`` (a pipeline over text with
gaps, numbers with gaps, and an e-mail column the dev environment's policy keeps out of the
log) and ``spend`` (a regression), both in dev; servers of it with the log in a folder of
the test's choosing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelrail.client import Client
from modelrail.config import Settings, init_project, load_settings
from modelrail.serving.server import ServeOptions
from tests.serving.conftest import RunningServer, running_server

POLICY = """
[environments.dev.monitoring]
log_predictions = 1.0
exclude_columns = ["email"]
"""
PREDICT = "/v1/models/churn/predict"


@dataclass
class Project:
    root: Path
    settings: Settings
    frame: pd.DataFrame
    model: Pipeline

    def client(self) -> Client:
        return Client(settings=self.settings, user="tester")

    @property
    def logs(self) -> Path:
        return Path(self.settings.monitoring_folder)


def customers(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Text with gaps, numbers with gaps, and an e-mail address that must never be logged."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(np.array(["basic", "plus", "pro", None], dtype=object), size=rows)
    tenure = rng.uniform(0, 60, size=rows)
    tenure[rng.random(rows) < 0.2] = np.nan
    email = np.array([f"user{i}@example.org" for i in range(rows)], dtype=object)
    visits = rng.integers(0, 30, size=rows).astype(np.int64)
    frame = pd.DataFrame({"plan": plan, "tenure": tenure, "email": email, "visits": visits})
    frame.loc[0, "plan"], frame.loc[1, "tenure"] = None, np.nan  # the example has both gaps
    labels = ((np.nan_to_num(tenure) < 20) | (plan == "basic")).astype(int)
    return frame, labels


def churn_model() -> Pipeline:
    text = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="none"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    prepare = ColumnTransformer(
        [("plan", text, ["plan"]), ("numbers", SimpleImputer(), ["tenure", "visits"])]
    )
    return Pipeline([("prepare", prepare), ("model", LogisticRegression())])


def make_project(root: Path, policy: str = POLICY) -> Project:
    init_project(root)
    (root / "modelrail.toml").write_text((root / "modelrail.toml").read_text() + policy)
    settings = load_settings(cwd=root, environ={}, create=False)
    frame, labels = customers(300, 0)
    model = churn_model().fit(frame, labels)
    with Client(settings=settings, user="tester") as client:
        client.register_model(model, "churn", input_example=frame[:5])
        numbers = frame[["visits"]].assign(tenure=frame["tenure"].fillna(30.0))
        spend = Ridge().fit(numbers, numbers["visits"] * 2.5 + numbers["tenure"])
        client.register_model(spend, "spend", input_example=numbers[:5])
    return Project(root, settings, frame, model)


@contextmanager
def serving(project: Project, logs: Path, **options: Any) -> Iterator[RunningServer]:
    """``serve --env dev`` with the prediction log under ``logs``; stopped (and its log
    written) on leaving."""
    settings = replace(project.settings, monitoring_root=str(logs))
    with running_server(settings, ServeOptions(environment="dev", **options)) as server:
        yield server


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


def metric(server: RunningServer, name: str, **labels: str) -> float:
    """A counter's value in /metrics (0 when it is not there)."""
    text = server.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0

"""A project with registered models to monitor, and prediction logs written as serving does.

The project is made once per module (registering takes a second or two); each test gets a
client of its own with its own monitoring folder, so logs and checks never leak between
tests. Models: ``churn``, a classifier of "yes" / "no" on a numeric ``tenure`` and a text
``plan`` with missing values, whose run logged its train and test data (so it has a
reference profile) and accuracy / f1; ``price``, a regressor with mae / rmse / r2.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelrail.client import Client
from modelrail.config import Settings, init_project, load_settings
from modelrail.monitoring import logfiles

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
DAY = 86_400.0
PLANS = ("basic", "pro", None)
USUAL_PLANS = (0.5, 0.4, 0.1)
POLICY = """
[environments.dev.monitoring]
min_live = { accuracy = 0.75 }
max_live = { mae = 4.0 }
retention_days = 3
"""


def frame(
    n: int, seed: int, *, shift: float = 0.0, plans: Sequence[float] = USUAL_PLANS
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.normal(30.0 + shift, 8.0, n),
            "plan": rng.choice(np.array(PLANS, dtype=object), n, p=plans),
        }
    )


def churned(features: pd.DataFrame, seed: int) -> np.ndarray[Any, Any]:
    noise = np.random.default_rng(seed).normal(0.0, 5.0, len(features))
    return np.where(features["tenure"].to_numpy() + noise > 30.0, "yes", "no")


def fit_churn(train: pd.DataFrame, labels: Any) -> Any:
    encode = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="none"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    columns = ColumnTransformer([("n", "passthrough", ["tenure"]), ("c", encode, ["plan"])])
    return make_pipeline(columns, LogisticRegression()).fit(train, labels)


def register_churn(client: Client, name: str, train: pd.DataFrame, seed: int) -> Any:
    """Train and register a churn classifier on ``train`` (with its data logged, so with a
    reference profile); the fitted model."""
    labels = churned(train, seed)
    model = fit_churn(train, labels)
    with client.start_run(name) as run:
        run.log_dataset(train.assign(churned=labels), name=name, role="train")
        run.log_metrics({"accuracy": float((model.predict(train) == labels).mean())})
        run.log_model(model, name, input_example=train[:5])
    return model


@dataclass
class Registered:
    root: Path
    settings: Settings
    churn: Any  # the fitted classifier
    price: Any  # the fitted regressor
    price_metrics: dict[str, float]


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    root = tmp_path_factory.mktemp("project")
    init_project(root)
    (root / "modelrail.toml").write_text(POLICY, encoding="utf-8")
    settings = load_settings(cwd=root, environ={}, create=False)
    train, test = frame(1500, 1), frame(500, 2)
    y_train, y_test = churned(train, 3), churned(test, 4)
    churn = fit_churn(train, y_train)
    numbers = train[["tenure"]].assign(size=np.arange(len(train)) % 7)
    target = (
        3.0 * numbers["tenure"]
        + numbers["size"]
        + np.random.default_rng(5).normal(0, 2, len(numbers))
    )
    price = LinearRegression().fit(numbers, target)
    predicted = price.predict(numbers)
    price_metrics = {
        "mae": float(mean_absolute_error(target, predicted)),
        "rmse": float(root_mean_squared_error(target, predicted)),
        "r2": float(r2_score(target, predicted)),
    }
    with Client(settings=settings, user="tester") as client:
        with client.start_run("churn") as run:
            run.log_dataset(train.assign(churned=y_train), name="churn", role="train")
            run.log_dataset(test.assign(churned=y_test), name="churn", role="test")
            accuracy = float((churn.predict(test) == y_test).mean())
            run.log_metrics({"accuracy": accuracy, "test_f1": 0.8, "validation_accuracy": 0.1})
            run.log_model(churn, "churn", input_example=test[:5])
        with client.start_run("price") as run:
            run.log_dataset(numbers.assign(price=target), name="price", role="train")
            run.log_metrics(price_metrics)
            run.log_model(price, "price", input_example=numbers[:5])
    yield Registered(root, settings, churn, price, price_metrics)


MakeClient = Callable[..., Client]


@pytest.fixture
def make_client(registered: Registered, tmp_path: Path) -> Iterator[MakeClient]:
    """A client of the registered project with its own monitoring folder (and, when given,
    a notify command)."""
    made: list[Client] = []

    def make(*, notify_command: str | None = None) -> Client:
        policy = registered.settings.policy
        if notify_command is not None:
            policy = dataclasses.replace(policy, notify_command=notify_command)
        settings = dataclasses.replace(
            registered.settings, monitoring_root=str(tmp_path / "monitoring"), policy=policy
        )
        made.append(Client(settings=settings, user="tester"))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> Client:
    return make_client()


def log_traffic(
    client: Client,
    model: Any,
    features: pd.DataFrame,
    *,
    at: float,
    name: str = "churn",
    version: int = 1,
    environment: str | None = "dev",
    source: str = "serve",
    sample_rate: float = 1.0,
    prefix: str = "r",
    spacing: float = 1.0,
) -> list[str]:
    """Log ``model``'s answers to ``features`` as the server logs them (one request per row,
    ``spacing`` seconds apart from ``at``); the request ids."""
    count = len(features)
    ids = [f"{prefix}{i}" for i in range(count)]
    times = [logfiles._moment(at + i * spacing) for i in range(count)]
    predicted = model.predict(features)
    if hasattr(model, "predict_proba"):
        text = pa.array([str(p) for p in predicted], pa.string())
        values = pa.array(model.predict_proba(features)[:, 1], pa.float64())
    else:
        text = pa.array([repr(float(p)) for p in predicted], pa.string())
        values = pa.array(predicted, pa.float64())
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(ids),
        "row": pa.array([0] * count, pa.int32()),
        "time": pa.array(times, logfiles.TIME_TYPE),
        "model": pa.array([name] * count),
        "version": pa.array([version] * count, pa.int64()),
        "environment": pa.array([environment] * count, pa.string()),
        "source": pa.array([source] * count),
        "sample_rate": pa.array([sample_rate] * count),
        "latency_ms": pa.array([1.0] * count),
        "prediction": text,
        "prediction_value": values,
    }
    for column in features.columns:
        values_of = features[column]
        kind = pa.float64() if pd.api.types.is_numeric_dtype(values_of) else pa.string()
        columns[f"input.{column}"] = pa.array(
            values_of.astype(object).where(values_of.notna(), None).tolist(), kind
        )
    logfiles.write_table(client.monitoring_root, "predictions", name, pa.table(columns))
    return ids


def recorder(folder: Path) -> str:
    """A notify command that keeps each payload it gets as a file in ``folder``."""
    script = folder / "record.py"
    script.write_text(
        "import pathlib, sys, time\n"
        "out = pathlib.Path(sys.argv[1]); out.mkdir(exist_ok=True)\n"
        "(out / f'{time.time_ns()}.json').write_bytes(sys.stdin.buffer.read())\n",
        encoding="utf-8",
    )
    return f"{sys.executable} {script} {folder / 'payloads'}"

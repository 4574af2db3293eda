"""What the export and import tests share: a model with a life worth carrying."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.portability.bundle_write import run_record, version_record

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))
MODEL = "churn"


def frame(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    """Customers with a text column and missing values, as real tables have."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "tenure": rng.normal(12, 4, rows),
            "calls": rng.integers(0, 9, rows).astype("int64"),
            "plan": rng.choice(["basic", "plus", None], rows),
        }
    )
    data.loc[::7, "tenure"] = np.nan
    return data


def train(client: Client, accuracy: float, *, seed: int = 0) -> int:
    """One run (params, stepped metrics, a dataset, a text artifact) and its version."""
    data = frame(seed=seed)
    features = data[["calls"]].astype("float64")
    labels = (data["calls"] > 4).astype(int)
    with client.start_run("churn-models", architecture="Beta") as run:
        run.log_params({"C": 0.5 + seed, "features": ["calls"]})
        for step, loss in enumerate((0.9, 0.6, 0.4)):
            run.log_metric("loss", loss, step=step)
        run.log_metric("accuracy", accuracy)
        run.log_dataset(data, role="train", name="customers")
        run.log_text(f"trained on {len(data)} rows", "notes.txt")
        model = LogisticRegression(C=0.5 + seed).fit(features, labels)
        version = run.log_model(model, MODEL, input_example=features[:2])
    return version.version


def promote_through(client: Client, approver: Client, version: int) -> None:
    client.promote(f"{MODEL}:{version}", "staging", reason="looks good")
    request = client.promote(f"{MODEL}:{version}", "prod", reason="ship it").request
    assert request is not None
    approver.approve(request.id, reason="checked")


def open_as(url: str, root: Path, user: str) -> Client:
    settings = load_settings(cwd=root, environ={}, create=False)
    return Client(store_url=url, settings=settings, user=user)


def records_of(client: Client) -> tuple[list[object], list[object]]:
    """Every version and its run as portable records: what must survive a trip."""
    models = {m.name: m.created_at for m in client.list_models()}
    experiments = {e.name: e.created_at for e in client.experiments()}
    versions = [version_record(v, models) for m in models for v in client.list_versions(m)]
    runs = [
        run_record(client.get_run(v.run_id), client.metric_history(v.run_id), experiments)
        for v in versions
        if v.run_id is not None
    ]
    return versions, runs


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    return subprocess.run(
        [MODELRAIL, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **(env or {})},
    )

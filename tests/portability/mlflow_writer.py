"""Writes a small MLflow tracking store with MLflow's own client (run with MLflow's Python).

    python mlflow_writer.py TRACKING_URI ARTIFACT_ROOT_OR_- OUT.json

Not a test module: the tests run it in the virtualenv tools/mlflow_env.py builds, then
import what it wrote and compare with what it says it wrote (OUT.json).
"""

from __future__ import annotations

import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

COMMIT = "3f2c9a4d1e0b8c7a6f5e4d3c2b1a09f8e7d6c5b4"
BASE_MS = 1_700_000_000_000


def main(uri: str, artifact_root: str, out: str) -> None:
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    location = None if artifact_root == "-" else artifact_root
    churn = client.create_experiment(
        "churn", artifact_location=location and f"{location}/churn", tags={"team": "growth"}
    )
    ranking = client.create_experiment(
        "ranking", artifact_location=location and f"{location}/ranking"
    )
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"tenure": rng.normal(size=60), "spend": rng.normal(size=60)})
    labels = (frame["tenure"] + frame["spend"] > 0).astype(int)
    written: dict[str, object] = {"experiments": {"churn": churn, "ranking": ranking}}
    rows = frame.head(5)
    predictions: dict[str, object] = {}
    written["rows"] = {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}
    written["predictions"] = predictions

    # A run with the git tags MLflow sets, a metric history, artifacts and a skops model.
    with mlflow.start_run(experiment_id=churn, run_name="baseline") as run:
        baseline = run.info.run_id
        client.log_batch(
            baseline,
            metrics=[Metric("loss", 1.0 / (s + 1), BASE_MS + 1000 * s, s) for s in range(5)]
            + [Metric("accuracy", 0.875, BASE_MS + 9000, 0)],
            params=[Param("C", "1.0"), Param("penalty", "l2")],
            tags=[
                RunTag("mlflow.source.git.commit", COMMIT),
                RunTag("mlflow.source.git.branch", "main"),
                RunTag("mlflow.source.git.repoURL", "git@example.com:team/churn.git"),
                RunTag("mlflow.source.name", "train.py"),
                RunTag("mlflow.source.type", "LOCAL"),
                RunTag("owner", "ana"),
            ],
        )
        client.log_text(baseline, "first notes\n", "notes.txt")
        client.log_text(baseline, "step,loss\n0,1.0\n1,0.5\n", "plots/curve.csv")
        model = LogisticRegression(C=1.0).fit(frame, labels)
        predictions["churn:1"] = model.predict_proba(rows).tolist()
        mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=frame.head(3),
            registered_model_name="churn",
            pip_requirements=["scikit-learn"],
        )
    # The same estimator saved with cloudpickle: a pickle, which must not load silently.
    with mlflow.start_run(experiment_id=churn, run_name="pickled") as run:
        pickled = run.info.run_id
        mlflow.log_param("C", "0.5")
        mlflow.log_metric("loss", 0.25, step=0)
        mlflow.log_metric("loss", float("nan"), step=1)
        model = LogisticRegression(C=0.5).fit(frame, labels)
        predictions["churn:2"] = model.predict_proba(rows).tolist()
        mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=frame.head(3),
            registered_model_name="churn",
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        )
    # A failed run in another experiment with an XGBoost model, registered.
    with mlflow.start_run(experiment_id=ranking, run_name="boosted") as run:
        boosted = run.info.run_id
        mlflow.log_params({"max_depth": "3", "n_estimators": "5"})
        for step in range(100):
            mlflow.log_metric("rmse", 2.0 - step / 100, step=step, timestamp=BASE_MS + step)
        booster = xgboost.XGBRegressor(n_estimators=5, max_depth=3).fit(frame, labels)
        predictions["ranker:1"] = booster.predict(rows).tolist()
        mlflow.xgboost.log_model(
            booster,
            name="model",
            input_example=frame.head(3),
            registered_model_name="ranker",
            pip_requirements=["xgboost"],
        )
    client.set_terminated(boosted, status="FAILED")
    # A deleted run: skipped by an import.
    with mlflow.start_run(experiment_id=ranking, run_name="discarded") as run:
        deleted = run.info.run_id
        mlflow.log_metric("rmse", 9.0)
    client.delete_run(deleted)

    client.transition_model_version_stage("churn", "1", "Production")
    client.set_registered_model_alias("churn", "staging", "2")
    client.set_registered_model_alias("churn", "champion", "2")
    client.update_model_version("churn", "2", description="pickled retrain")
    written["runs"] = {
        "baseline": baseline,
        "pickled": pickled,
        "boosted": boosted,
        "deleted": deleted,
    }
    written["commit"] = COMMIT
    written["mlflow"] = mlflow.__version__
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(written, handle, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:4])

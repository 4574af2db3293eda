"""Ten model versions that tell how a model grows: more and cleaner training data,
a new validation split, tuned parameters, three architectures and a new feature.

Everything is real: each step trains a model, logs its datasets, params and
metrics through the public API, and registers a version.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from modelrail.client import Client
from modelrail.config import CONFIG_FILE_NAME, init_project, load_settings
from modelrail.demo.batch import run_batch_story
from modelrail.demo.monitoring import run_monitoring_story
from modelrail.demo.promotion import DEMO_POLICY, run_promotion_story
from modelrail.errors import InvalidInputError
from modelrail.store.tracker_query import TrackerQuery

EXPERIMENT = "breast-cancer"
DATASET = "breast-cancer"
MODEL = "cancer-classifier"


@dataclass(frozen=True)
class Step:
    story: str
    architecture: str
    params: dict[str, Any]
    train: str = "first-60%"  # which training data: first-60%, all, cleaned
    validation_seed: int = 1
    engineered: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


STEPS = (
    Step(
        "Alpha: logistic regression on the first 60% of the training data",
        "Alpha",
        {"C": 0.01, "max_iter": 2000},
    ),
    Step(
        "more training data arrives (train 1.1)",
        "Alpha",
        {"C": 0.01, "max_iter": 2000},
        train="all",
    ),
    Step(
        "training data cleaned of outliers (train 1.2)",
        "Alpha",
        {"C": 0.01, "max_iter": 2000},
        train="cleaned",
    ),
    Step(
        "weaker regularisation (params 1.1)", "Alpha", {"C": 1.0, "max_iter": 2000}, train="cleaned"
    ),
    Step(
        "a new validation split (validation 1.1; the rest of the pool becomes train 1.3)",
        "Alpha",
        {"C": 1.0, "max_iter": 2000},
        train="cleaned",
        validation_seed=2,
    ),
    Step(
        "Beta: random forest",
        "Beta",
        {"n_estimators": 50, "max_depth": 4},
        train="cleaned",
        validation_seed=2,
    ),
    Step(
        "deeper, larger forest",
        "Beta",
        {"n_estimators": 200, "max_depth": 8},
        train="cleaned",
        validation_seed=2,
    ),
    Step(
        "Gamma: gradient boosting",
        "Gamma",
        {"n_estimators": 60, "learning_rate": 0.1, "max_depth": 2},
        train="cleaned",
        validation_seed=2,
    ),
    Step(
        "more boosting rounds",
        "Gamma",
        {"n_estimators": 150, "learning_rate": 0.1, "max_depth": 2},
        train="cleaned",
        validation_seed=2,
    ),
    Step(
        "a new feature, area/radius ratio (data 2.0)",
        "Gamma",
        {"n_estimators": 150, "learning_rate": 0.1, "max_depth": 2},
        train="cleaned",
        validation_seed=2,
        engineered=True,
    ),
)


def _load() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    features = bunch.data.rename(columns=lambda c: c.replace(" ", "_"))
    # Positive class = malignant, so a false positive is a benign case flagged as malignant.
    target = (bunch.target == 0).astype("int64").rename("malignant")
    return features, target


def _patients(step: Step, X: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    """Every patient, with the columns ``step``'s model takes, and an id."""
    parts = [features for features, _ in _splits(step, X, y).values()]
    frame = pd.concat(parts).sort_index()
    return frame.rename_axis("patient_id").reset_index()


def _splits(step: Step, X: pd.DataFrame, y: pd.Series) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    from sklearn.model_selection import train_test_split

    if step.engineered:
        X = X.assign(area_radius_ratio=X["mean_area"] / X["mean_radius"])
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.2, random_state=0, stratify=y
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_pool, y_pool, test_size=0.2, random_state=step.validation_seed, stratify=y_pool
    )
    X_train, y_train = X_train.sort_index(), y_train.sort_index()
    if step.train == "first-60%":
        keep = int(len(X_train) * 0.6)
        X_train, y_train = X_train.iloc[:keep], y_train.iloc[:keep]
    elif step.train == "cleaned":
        z = ((X_train - X_train.mean()) / X_train.std()).abs()
        inliers = (z < 5).all(axis=1)
        X_train, y_train = X_train[inliers], y_train[inliers]
    return {"train": (X_train, y_train), "validation": (X_val, y_val), "test": (X_test, y_test)}


def _estimator(step: Step) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if step.architecture == "Alpha":
        return make_pipeline(StandardScaler(), LogisticRegression(**step.params))
    if step.architecture == "Beta":
        return RandomForestClassifier(random_state=0, n_jobs=1, **step.params)
    return GradientBoostingClassifier(random_state=0, **step.params)


def _scores(model: Any, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    predicted = np.asarray(model.predict(X))
    truth = y.to_numpy()
    negatives = int((truth == 0).sum())
    false_positives = int(((predicted == 1) & (truth == 0)).sum())
    return {
        "accuracy": float((predicted == truth).mean()),
        "false_positive_rate": false_positives / negatives if negatives else 0.0,
    }


def train_step(client: Client, step: Step, X: pd.DataFrame, y: pd.Series) -> int:
    data = _splits(step, X, y)
    with client.start_run(
        EXPERIMENT, architecture=step.architecture, tags={"story": step.story}
    ) as run:
        for role, (features, target) in data.items():
            run.log_dataset(features.assign(malignant=target), name=DATASET, role=role)
        run.log_params(step.params)
        model = _estimator(step).fit(*data["train"])
        validation = _scores(model, *data["validation"])
        run.log_metrics({f"validation_{k}": v for k, v in validation.items()})
        run.log_metrics(_scores(model, *data["test"]))
        if hasattr(model, "staged_predict_proba"):
            X_val, y_val = data["validation"]
            for stage, proba in enumerate(model.staged_predict_proba(X_val)):
                loss = float(
                    -np.mean(np.log(np.clip(proba[np.arange(len(y_val)), y_val], 1e-12, 1)))
                )
                run.log_metric("validation_log_loss", loss, step=stage)
        if hasattr(model, "feature_importances_"):
            importance = pd.Series(model.feature_importances_, index=data["train"][0].columns)
            run.log_text(importance.sort_values(ascending=False).to_csv(), "feature_importance.csv")
        version = run.log_model(model, MODEL, input_example=data["test"][0].head(5))
    return version.version


DEMO_MARKER = ".modelrail-demo"


def run_demo(path: Path, out: Console) -> None:
    if path.exists() and any(path.iterdir()):
        if not (path / DEMO_MARKER).is_file():
            raise InvalidInputError(
                f"demo folder {path} exists and is not an earlier demo: "
                "choose another --path (the demo recreates its folder)"
            )
        shutil.rmtree(path)
    init_project(path)
    (path / DEMO_MARKER).write_text("created by modelrail demo; recreated on every run\n")
    (path / CONFIG_FILE_NAME).write_text(
        "# The demo's gates; see 'modelrail init' for every setting.\n" + DEMO_POLICY,
        encoding="utf-8",
    )
    settings = load_settings(cwd=path, environ={}, create=False)
    X, y = _load()
    with Client(settings=replace(settings, user="alice")) as client:
        out.print(f"[bold]modelrail demo[/] in {path}: {len(STEPS)} versions of {MODEL}\n")
        step_of: dict[int, Step] = {}
        for step in STEPS:
            version = train_step(client, step, X, y)
            step_of[version] = step
            out.print(f"  v{version}: {step.story}")
        page = client.tracker(
            TrackerQuery(
                experiment=EXPERIMENT,
                metrics=("accuracy", "false_positive_rate"),
                sort="version",
                ascending=True,
            )
        )
        from modelrail.cli.runs import print_tracker

        out.print()
        print_tracker(page, out)
        best = client.best_run("accuracy", experiment=EXPERIMENT)
        best_version = best.model_versions[0]
        reference = f"{best_version.model}:{best_version.version}"
        loaded = client.load_model(reference)
        X_test, y_test = _splits(step_of[best_version.version], X, y)["test"]
        check = _scores(loaded, X_test, y_test)["accuracy"]
        out.print(
            f"\nbest model: {reference} (run {best.short_id}), "
            f"accuracy {best.metrics['accuracy']:.1%}, "
            f"false positives {best.metrics['false_positive_rate']:.1%}; "
            f"reloaded from its verified artifact it scores {check:.1%} again"
        )
        with Client(settings=replace(settings, user="bob")) as bob:
            run_promotion_story(client, bob, MODEL, best_version.version, out)
        prod = client.get_model_version(f"{MODEL}@prod").version
        patients = _patients(step_of[prod], X, y)
        run_batch_story(client, MODEL, patients, out)
        run_monitoring_story(client, MODEL, patients, y, out)
        out.print(
            f"\nexplore it: cd {path} && modelrail runs, modelrail runs show {best.short_id}, "
            "modelrail models show cancer-classifier, modelrail datasets, modelrail envs, "
            "modelrail history, modelrail batch history, modelrail monitor cancer-classifier@prod, "
            "modelrail ui"
        )

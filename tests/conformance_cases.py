"""The models of the conformance matrix (tests/test_conformance.py): one case per family and
shape people train, each with data that has what real data has."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Built:
    model: Any
    example: Any  # the input_example given to log_model
    rows: pd.DataFrame  # rows to score on every path, with the model's input columns
    predict: Callable[[pd.DataFrame], Any]
    predict_proba: Callable[[pd.DataFrame], Any] | None
    log_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    name: str
    flavor: str
    build: Callable[[Path], Built]
    regression: bool = False
    tolerance: float = 1e-9


NUMBERS = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]


def fair() -> tuple[pd.DataFrame, pd.Series]:
    """statsmodels' survey of extramarital affairs, occupation codes as text."""
    import statsmodels.api as sm

    data = sm.datasets.fair.load_pandas().data
    frame = data[NUMBERS].copy()
    frame["occupation"] = "occ" + data["occupation"].astype(int).astype(str)
    frame["occupation_husb"] = "occ" + data["occupation_husb"].astype(int).astype(str)
    return frame, (data["affairs"] > 0).astype(int)


def with_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    gaps = frame.copy()
    gaps.loc[gaps.index[::5], "age"] = np.nan
    gaps.loc[gaps.index[::7], "educ"] = np.nan
    return gaps


def held_out(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[3000:].reset_index(drop=True)


def _classifier(model: Any, rows: pd.DataFrame, example: Any = None, **log: Any) -> Built:
    return Built(
        model,
        rows[:5] if example is None else example,
        held_out(rows),
        model.predict,
        model.predict_proba,
        log,
    )


def sklearn_text_pipeline(_: Path) -> Built:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, target = fair()
    encode = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), ["occupation", "occupation_husb"]),
            ("numbers", StandardScaler(), NUMBERS),
        ]
    )
    model = make_pipeline(encode, LogisticRegression(max_iter=500))
    return _classifier(model.fit(frame[:3000], target[:3000]), frame)


def sklearn_missing_values(_: Path) -> Built:
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame, target = fair()
    gaps = with_gaps(frame[NUMBERS])
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
    return _classifier(model.fit(gaps[:3000], target[:3000]), gaps)


def sklearn_string_labels(_: Path) -> Built:
    """Multiclass with text labels: which occupation, from the rest."""
    from sklearn.ensemble import RandomForestClassifier

    frame, _ = fair()
    features = [*NUMBERS]
    model = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
    model.fit(frame[features][:3000], frame["occupation"][:3000])
    return _classifier(model, frame[features])


def sklearn_regressor(_: Path) -> Built:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = RandomForestRegressor(n_estimators=20, max_depth=5, random_state=0)
    model.fit(X[:300], y[:300])
    return Built(model, X[:5], X.iloc[300:].reset_index(drop=True), model.predict, None)


CASES = [
    Case("sklearn-text-pipeline", "sklearn", sklearn_text_pipeline),
    Case("sklearn-missing-values", "sklearn", sklearn_missing_values),
    Case("sklearn-string-labels", "sklearn", sklearn_string_labels),
    Case("sklearn-regressor", "sklearn", sklearn_regressor, regression=True),
]


def _as_categories(frame: pd.DataFrame, columns: list[str], categories: list[str]) -> pd.DataFrame:
    converted = frame.copy()
    for name in columns:
        converted[name] = pd.Categorical(converted[name], categories=categories)
    return converted


OCCUPATIONS = [f"occ{i}" for i in range(1, 7)]


def xgboost_categories_and_gaps(_: Path) -> Built:
    """Text categories and missing values, natively (enable_categorical, NaN branches)."""
    from xgboost import XGBClassifier

    frame, target = fair()
    rows = with_gaps(frame[[*NUMBERS, "occupation"]])
    train = _as_categories(rows[:3000], ["occupation"], OCCUPATIONS)
    model = XGBClassifier(n_estimators=20, max_depth=3, enable_categorical=True)
    model.fit(train, target[:3000])

    def native(data: pd.DataFrame) -> pd.DataFrame:
        return _as_categories(data, ["occupation"], OCCUPATIONS)

    return Built(
        model,
        train[:5],
        held_out(rows),
        lambda data: model.predict(native(data)),
        lambda data: model.predict_proba(native(data)),
    )


def lightgbm_text_labels(_: Path) -> Built:
    """String class labels, a text category and missing values."""
    from lightgbm import LGBMClassifier

    frame, target = fair()
    rows = with_gaps(frame[[*NUMBERS, "occupation"]])
    train = _as_categories(rows[:3000], ["occupation"], OCCUPATIONS)
    labels = np.where(target[:3000] > 0, "affair", "none")
    model = LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1).fit(train, labels)

    def native(data: pd.DataFrame) -> pd.DataFrame:
        return _as_categories(data, ["occupation"], OCCUPATIONS)

    return Built(
        model,
        train[:5],
        held_out(rows),
        lambda data: model.predict(native(data)),
        lambda data: model.predict_proba(native(data)),
    )


def catboost_text_categories(_: Path) -> Built:
    from catboost import CatBoostClassifier

    frame, target = fair()
    rows = frame[[*NUMBERS, "occupation", "occupation_husb"]]
    model = CatBoostClassifier(
        iterations=30,
        depth=4,
        verbose=False,
        random_seed=0,
        allow_writing_files=False,  # CatBoost would write catboost_info/ to the cwd
        thread_count=1,
        cat_features=["occupation", "occupation_husb"],
    )
    model.fit(rows[:3000], target[:3000])
    return _classifier(model, rows)


def catboost_regressor(_: Path) -> Built:
    from catboost import CatBoostRegressor

    frame, _ = fair()
    rows = frame[["age", "yrs_married", "children", "educ", "occupation"]]
    model = CatBoostRegressor(
        iterations=30,
        depth=4,
        verbose=False,
        random_seed=0,
        allow_writing_files=False,  # CatBoost would write catboost_info/ to the cwd
        thread_count=1,
        cat_features=["occupation"],
    )
    model.fit(rows[:3000], frame["rate_marriage"][:3000])
    return Built(model, rows[:5], held_out(rows), model.predict, None)


CASES += [
    Case("xgboost-categories-gaps", "xgboost", xgboost_categories_and_gaps, tolerance=1e-6),
    Case("lightgbm-text-labels", "lightgbm", lightgbm_text_labels),
    Case("catboost-text-categories", "catboost", catboost_text_categories),
    Case("catboost-regressor", "catboost", catboost_regressor, regression=True),
]

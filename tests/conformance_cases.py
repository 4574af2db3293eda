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


def _fair_target():
    frame, target = fair()
    frame = frame.copy()
    frame["affair"] = target
    return frame


def sm_formula_logit(_: Path) -> Built:
    import statsmodels.formula.api as smf

    frame = _fair_target()
    cols = ["occupation", "occupation_husb", "age", "yrs_married", "religious"]
    result = smf.logit(
        "affair ~ C(occupation) + occupation_husb + age + yrs_married + np.log(age)"
        " + religious:yrs_married",
        frame[:3000],
    ).fit(disp=0)

    def proba(r):
        p = np.asarray(result.predict(r))
        return np.column_stack([1 - p, p])

    return Built(
        result,
        frame[cols][:5],
        held_out(frame[cols]),
        lambda r: (np.asarray(result.predict(r)) > 0.5).astype(int),
        proba,
    )


def sm_ols_const(_: Path) -> Built:
    import statsmodels.api as sm

    frame, _t = fair()
    X = frame[["age", "yrs_married", "children", "educ"]]
    result = sm.OLS(frame["rate_marriage"][:3000], sm.add_constant(X[:3000])).fit()
    return Built(
        result,
        X[:5],
        held_out(X),
        lambda r: np.asarray(result.predict(sm.add_constant(r, has_constant="add"))),
        None,
    )


def sm_glm_poisson(_: Path) -> Built:
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    frame, _t = fair()
    cols = ["occupation", "age", "yrs_married", "children"]
    result = smf.glm(
        "children ~ C(occupation) + age + yrs_married", frame[:3000], family=sm.families.Poisson()
    ).fit()
    return Built(
        result,
        frame[cols][:5],
        held_out(frame[cols]),
        lambda r: np.asarray(result.predict(r)),
        None,
    )


def _ort(model, feeds_of):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda r: s.run(None, feeds_of(r))


def onnx_forest_zipmap(_: Path) -> Built:
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    frame, _ = fair()
    X = frame[NUMBERS]
    forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(
        X[:3000], frame["occupation"][:3000]
    )
    model = to_onnx(forest, X[:1].to_numpy(np.float32))
    run = _ort(model, lambda r: {"X": r.to_numpy(np.float32)})
    classes = list(forest.classes_)
    return Built(
        model,
        X[:5],
        held_out(X),
        lambda r: list(run(r)[0]),
        lambda r: np.array([[d[c] for c in classes] for d in run(r)[1]], dtype=float),
    )


def onnx_text_columns(_: Path) -> Built:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, target = fair()
    cols = ["occupation", "age", "yrs_married"]
    X = frame[cols]
    pipe = make_pipeline(
        ColumnTransformer(
            [
                ("t", OneHotEncoder(handle_unknown="ignore"), ["occupation"]),
                ("n", "passthrough", ["age", "yrs_married"]),
            ]
        ),
        LogisticRegression(max_iter=1000),
    ).fit(X[:3000], target[:3000])
    model = to_onnx(
        pipe,
        initial_types=[
            ("occupation", StringTensorType([None, 1])),
            ("age", FloatTensorType([None, 1])),
            ("yrs_married", FloatTensorType([None, 1])),
        ],
        options={"zipmap": False},
    )

    def feeds(r):
        return {
            "occupation": r[["occupation"]].to_numpy().astype(str),
            "age": r[["age"]].to_numpy(np.float32),
            "yrs_married": r[["yrs_married"]].to_numpy(np.float32),
        }

    run = _ort(model, feeds)
    return Built(
        model,
        X[:5],
        held_out(X),
        lambda r: list(run(r)[0]),
        lambda r: (lambda p: np.column_stack([1 - p, p]))(np.asarray(run(r)[1], dtype=float)[:, 1]),
    )


def onnx_regressor(tmp: Path) -> Built:
    import onnx
    from skl2onnx import to_onnx
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = to_onnx(
        RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(X[:300], y[:300]),
        X[:1].to_numpy(np.float32),
    )
    path = tmp / "diabetes.onnx"
    onnx.save_model(model, path)
    run = _ort(model, lambda r: {"X": r.to_numpy(np.float32)})
    return Built(
        str(path),
        X[:5],
        X.iloc[300:].reset_index(drop=True),
        lambda r: run(r)[0].reshape(-1).astype(float),
        None,
    )


CASES += [
    Case("sm-formula-logit", "statsmodels", sm_formula_logit),
    Case("sm-ols-const", "statsmodels", sm_ols_const, regression=True),
    Case("sm-glm-poisson", "statsmodels", sm_glm_poisson, regression=True),
    Case("onnx-forest-zipmap", "onnx", onnx_forest_zipmap),
    Case("onnx-text-columns", "onnx", onnx_text_columns),
    Case("onnx-regressor", "onnx", onnx_regressor, regression=True),
]


_CUSTOM_MODEL = """
import numpy as np


class Scorecard:
    \"\"\"Points per answer, a logistic link: the kind of model a survey team writes itself.\"\"\"

    def __init__(self, weights, bias, columns):
        self.weights = np.asarray(weights, dtype=float)
        self.bias = float(bias)
        self.columns = list(columns)
        self.classes_ = np.array([0, 1])
        self.feature_names_in_ = np.array(self.columns, dtype=object)

    def predict_proba(self, frame):
        z = np.asarray(frame[self.columns], dtype=float) @ self.weights + self.bias
        p = 1 / (1 + np.exp(-z))
        return np.column_stack([1 - p, p])

    def predict(self, frame):
        return (self.predict_proba(frame)[:, 1] > 0.5).astype(int)
"""


def custom_python(tmp: Path) -> Built:
    """A class of the user's own, its code shipped with the version (code_paths)."""
    import importlib.util
    import sys

    path = tmp / "scorecard_model.py"
    path.write_text(_CUSTOM_MODEL, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("scorecard_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scorecard_model"] = module
    spec.loader.exec_module(module)
    frame, _ = fair()
    X = frame[NUMBERS]
    model = module.Scorecard([-0.7, 0.05, 0.1, 0.05, -0.3, 0.01], 0.5, NUMBERS)
    return Built(
        model, X[:5], held_out(X), model.predict, model.predict_proba, {"code_paths": [path]}
    )


CASES += [Case("custom-python", "python", custom_python)]


def sklearn_multi_output_regressor(_: Path) -> Built:
    """Two answers per row: how happy the marriage is and how many children."""
    from sklearn.ensemble import RandomForestRegressor

    frame, _ = fair()
    features = ["age", "yrs_married", "religious", "educ"]
    targets = frame[["rate_marriage", "children"]]
    model = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0)
    model.fit(frame[features][:3000], targets[:3000])
    return Built(model, frame[features][:5], held_out(frame[features]), model.predict, None)


def sklearn_multi_output_labels(_: Path) -> Built:
    """Two text labels per row (each occupation), no single table of probabilities."""
    from sklearn.multioutput import MultiOutputClassifier
    from sklearn.tree import DecisionTreeClassifier

    frame, _ = fair()
    model = MultiOutputClassifier(DecisionTreeClassifier(max_depth=4, random_state=0))
    model.fit(frame[NUMBERS][:3000], frame[["occupation", "occupation_husb"]][:3000])
    return Built(model, frame[NUMBERS][:5], held_out(frame[NUMBERS]), model.predict, None)


CASES += [
    Case(
        "sklearn-multi-output-regressor", "sklearn", sklearn_multi_output_regressor, regression=True
    ),
    Case("sklearn-multi-output-labels", "sklearn", sklearn_multi_output_labels),
]


_TENURE_MODEL = """
import numpy as np
import pandas as pd


class Tenure:
    # Churn odds from how long ago a customer joined (a date column) and their spend.

    feature_names_in_ = np.array(["joined", "spend"], dtype=object)
    classes_ = np.array(["stays", "leaves"], dtype=object)

    def predict_proba(self, frame):
        joined = pd.to_datetime(frame["joined"])
        days = (pd.Timestamp("2026-01-01") - joined).dt.days.to_numpy(dtype=float)
        z = 1.5 - days / 400 + np.asarray(frame["spend"], dtype=float) / 100
        p = 1 / (1 + np.exp(z))
        return np.column_stack([1 - p, p])

    def predict(self, frame):
        return self.classes_[self.predict_proba(frame).argmax(axis=1)]
"""


def custom_python_dates(tmp: Path) -> Built:
    """A datetime input column on every path (ISO text in JSON and CSV, timestamps in Parquet)."""
    import importlib.util
    import sys

    path = tmp / "tenure_model.py"
    path.write_text(_TENURE_MODEL, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("tenure_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tenure_model"] = module
    spec.loader.exec_module(module)
    rng = np.random.default_rng(4)
    days = rng.integers(0, 2000, size=200)
    rows = pd.DataFrame(
        {
            "joined": pd.Timestamp("2020-06-01") + pd.to_timedelta(days, unit="D"),
            "spend": rng.normal(50, 30, size=200).round(2),
        }
    )
    model = module.Tenure()
    return Built(model, rows[:5], rows, model.predict, model.predict_proba, {"code_paths": [path]})


CASES += [Case("custom-python-dates", "python", custom_python_dates)]


def xgboost_regressor(_: Path) -> Built:
    """A regressor trained and scored with missing values."""
    from xgboost import XGBRegressor

    frame, _ = fair()
    features = ["age", "yrs_married", "religious", "educ"]
    rows = with_gaps(frame[features])
    model = XGBRegressor(n_estimators=20, max_depth=3).fit(
        rows[:3000], frame["rate_marriage"][:3000]
    )
    return Built(model, rows[:5], held_out(rows), model.predict, None)


def lightgbm_multiclass_labels(_: Path) -> Built:
    """Which occupation (six text labels), from the rest, with missing values."""
    from lightgbm import LGBMClassifier

    frame, _ = fair()
    rows = with_gaps(frame[NUMBERS])
    model = LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1)
    model.fit(rows[:3000], frame["occupation"][:3000])
    return _classifier(model, rows)


CASES += [
    Case("xgboost-regressor-gaps", "xgboost", xgboost_regressor, regression=True, tolerance=1e-6),
    Case("lightgbm-multiclass-labels", "lightgbm", lightgbm_multiclass_labels),
]

"""The model families of the serving benchmark (issue 16, item 4): each trained on data that
ships with scikit-learn or statsmodels, registered in one fresh modelrail project (they all
land in ``dev``) and pickled for the plain FastAPI app.

- linear: StandardScaler + LogisticRegression on breast cancer (30 numbers);
- forest: RandomForestClassifier, 100 trees, on breast cancer;
- hgb: HistGradientBoostingClassifier on breast cancer;
- xgboost: XGBClassifier, 100 trees, on breast cancer;
- lightgbm: LGBMClassifier, 100 trees, on breast cancer;
- pipeline: ColumnTransformer (one-hot text + scaled numbers) + LogisticRegression on
  statsmodels' ``fair`` data, the two occupations as text (6 numbers, 2 text columns).

Every model is fitted on a DataFrame, as a user would, with the libraries' default settings
(threads included) and a fixed seed.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FAMILIES = ("linear", "forest", "hgb", "xgboost", "lightgbm", "pipeline")
LABELS = {
    "linear": "linear (scaler + logistic)",
    "forest": "random forest, 100 trees",
    "hgb": "HistGradientBoosting",
    "xgboost": "XGBoost",
    "lightgbm": "LightGBM",
    "pipeline": "ColumnTransformer + logistic (text)",
}
# statsmodels' codes for the wife's and the husband's occupation, as the text a form sends.
OCCUPATIONS = {
    1.0: "student",
    2.0: "unskilled",
    3.0: "white-collar",
    4.0: "skilled",
    5.0: "managerial",
    6.0: "professional",
}


@dataclass(frozen=True)
class Family:
    key: str
    model_name: str  # as registered in modelrail
    pickle_path: str
    columns: list[str]
    types: dict[str, str]  # column -> "float" or "str" (the FastAPI app's pydantic fields)
    frame: bool  # the plain FastAPI app builds a pandas DataFrame (else a numpy array)
    row: dict[str, Any]  # the request's single row
    expected: Any  # the library's own prediction for it


def cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.data.rename(columns=lambda c: c.replace(" ", "_")), data.target


def fair() -> tuple[Any, Any]:
    import statsmodels.api as sm

    frame = sm.datasets.fair.load_pandas().data
    y = (frame.pop("affairs") > 0).astype(int)
    for column in ("occupation", "occupation_husb"):
        frame[column] = frame[column].map(OCCUPATIONS).astype(object)
    return frame, y


def fit(key: str) -> tuple[Any, Any]:
    """The fitted model and the DataFrame it was fitted on."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if key == "pipeline":
        X, y = fair()
        text = ["occupation", "occupation_husb"]
        numbers = [c for c in X.columns if c not in text]
        encode = ColumnTransformer(
            [
                ("text", OneHotEncoder(handle_unknown="ignore"), text),
                ("numbers", StandardScaler(), numbers),
            ]
        )
        return make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y), X
    X, y = cancer()
    if key == "linear":
        model: Any = make_pipeline(StandardScaler(), LogisticRegression())
    elif key == "forest":
        model = RandomForestClassifier(n_estimators=100, random_state=0)
    elif key == "hgb":
        model = HistGradientBoostingClassifier(random_state=0)
    elif key == "xgboost":
        from xgboost import XGBClassifier

        model = XGBClassifier(n_estimators=100, random_state=0)
    elif key == "lightgbm":
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(n_estimators=100, random_state=0, verbose=-1)
    else:
        raise ValueError(f"unknown family {key}")
    return model.fit(X, y), X


def train_all(work: Path, keys: tuple[str, ...], project: Path) -> list[Family]:
    """Fit each family, pickle it under ``work`` and register it in a new ``project``."""
    from modelrail import Client
    from modelrail.config import init_project, load_settings

    init_project(project)
    client = Client(settings=load_settings(cwd=project, environ={}, create=False))
    families: list[Family] = []
    try:
        for key in keys:
            model, X = fit(key)
            path = work / f"{key}.pkl"
            path.write_bytes(pickle.dumps(model))
            client.register_model(model, f"bench-{key}", input_example=X.iloc[:5])
            row = {c: (v if isinstance(v, str) else float(v)) for c, v in X.iloc[0].items()}
            types = {c: "str" if isinstance(v, str) else "float" for c, v in row.items()}
            families.append(
                Family(
                    key=key,
                    model_name=f"bench-{key}",
                    pickle_path=str(path),
                    columns=list(X.columns),
                    types=types,
                    frame="str" in types.values(),
                    row=row,
                    expected=model.predict(X.iloc[:1])[0].item(),
                )
            )
    finally:
        client.close()
    (work / "families.json").write_text(json.dumps([asdict(f) for f in families]))
    return families


def body(family: Family, shape: str = "records") -> bytes:
    """One row as records (``{"inputs": [{...}]}``) or ``split`` (columns + data)."""
    if shape == "split":
        split = {"columns": family.columns, "data": [[family.row[c] for c in family.columns]]}
        return json.dumps(split).encode()
    return json.dumps({"inputs": [family.row]}).encode()

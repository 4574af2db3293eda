"""The by-family batch benchmark's untimed steps, each in its own process (run with .venv's
Python) so the driver stays small, as ``_setup.py`` does for ``run.py``.

    python _family_setup.py generate KIND FILE ROWS SEED
    python _family_setup.py train WORK FAMILY=INPUT ...
    python _family_setup.py check INPUT MODEL_PKL ROWS SAMPLE LABEL=KIND:WHERE:TABLE ...

KIND is the input's shape: ``numbers`` (id + 30 standard-normal float64 features, as
``_setup.py`` generates them), ``gaps`` (the same with 2% of five columns missing, for the
families that score a missing value) or ``text`` (id, 6 numbers and 2 text columns drawn from
a handful of categories). Each command prints one JSON line.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _setup import FEATURES, PIECE_ROWS, TRAIN_ROWS, _read_rows
from _setup import generate as generate_numbers
from _setup import schema as numbers_schema

DESCRIPTIONS = {
    "forest": "RandomForestClassifier(n_estimators=100, random_state=0)",
    "hgb": "HistGradientBoostingClassifier(random_state=0)",
    "xgboost": "XGBClassifier(n_estimators=100, random_state=0)",
    "lightgbm": "LGBMClassifier(n_estimators=100, random_state=0, verbose=-1)",
    "pipeline": "ColumnTransformer(OneHotEncoder(handle_unknown='ignore') on 2 text columns, "
    "StandardScaler on 6 numbers) + LogisticRegression(max_iter=1000)",
}
GAP_COLUMNS = FEATURES[:5]  # the columns with missing values in a ``gaps`` input
GAP_RATE = 0.02
NUMBERS = [f"n{i}" for i in range(6)]
TEXT = {  # column -> (categories, how often each is drawn)
    "occupation": (
        ("student", "unskilled", "white-collar", "skilled", "managerial", "professional"),
        (0.05, 0.15, 0.3, 0.25, 0.15, 0.1),
    ),
    "region": (("north", "south", "east", "west", "centre"), (0.3, 0.25, 0.2, 0.15, 0.1)),
}
TEXT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        *((name, pa.float64()) for name in NUMBERS),
        *((name, pa.string()) for name in TEXT),
    ]
)


# -- inputs ------------------------------------------------------------------------------


def _gaps_piece(values: np.ndarray[Any, Any], rng: np.random.Generator) -> None:
    for j in range(len(GAP_COLUMNS)):
        values[j][rng.random(values.shape[1]) < GAP_RATE] = np.nan


def _text_piece(rng: np.random.Generator, start: int, count: int) -> pa.Table:
    numbers = rng.standard_normal((len(NUMBERS), count))
    numbers *= np.array([1.0, 2.0, 5.0, 10.0, 0.5, 100.0])[:, None]  # unlike scales
    arrays: list[pa.Array] = [pa.array(np.arange(start, start + count, dtype=np.int64))]
    arrays.extend(pa.array(column) for column in numbers)
    for categories, weights in TEXT.values():
        codes = rng.choice(len(categories), size=count, p=weights).astype(np.int32)
        text = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(categories))
        arrays.append(text.cast(pa.string()))
    return pa.Table.from_arrays(arrays, schema=TEXT_SCHEMA)


def generate(kind: str, path: str, rows: int, seed: int) -> dict[str, Any]:
    """A ``kind`` input of ``rows`` rows, written piece by piece (row groups of 100,000)."""
    if kind == "numbers":
        return generate_numbers(path, rows, seed) | {"kind": kind}
    rng = np.random.default_rng(seed)
    schema = numbers_schema() if kind == "gaps" else TEXT_SCHEMA
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, PIECE_ROWS):
            count = min(PIECE_ROWS, rows - start)
            if kind == "text":
                writer.write_table(_text_piece(rng, start, count))
                continue
            values = rng.standard_normal((len(FEATURES), count))
            _gaps_piece(values, rng)
            arrays = [pa.array(np.arange(start, start + count, dtype=np.int64))]
            arrays.extend(pa.array(column) for column in values)
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
    meta = pq.read_metadata(path)
    size = Path(path).stat().st_size
    return {"kind": kind, "rows": meta.num_rows, "row_groups": meta.num_row_groups, "bytes": size}


# -- models ------------------------------------------------------------------------------


def labels(frame: Any) -> np.ndarray[Any, Any]:
    """A target with some structure for trees to find (interactions, a curve) and noise;
    a missing value counts as 0."""
    noise = np.random.default_rng(2).normal(size=len(frame))
    if "occupation" in frame.columns:
        X = frame[NUMBERS].to_numpy()
        X = X / X.std(axis=0)
        score = X @ np.random.default_rng(1).normal(size=len(NUMBERS))
        for column, (categories, _) in TEXT.items():
            effects = dict(zip(categories, np.linspace(-1.5, 1.5, len(categories)), strict=True))
            score += frame[column].map(effects).to_numpy(dtype=np.float64)
    else:
        X = np.nan_to_num(frame[FEATURES].to_numpy())
        score = X @ np.random.default_rng(1).normal(size=len(FEATURES))
        score += 2.0 * X[:, 0] * X[:, 1] + 2.0 * np.sin(2.0 * X[:, 2])
    found: np.ndarray[Any, Any] = (score + noise > 0).astype(np.int64)
    return found


def estimator(family: str) -> Any:
    """Each family with the library's defaults and a fixed seed."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if family == "forest":
        return RandomForestClassifier(n_estimators=100, random_state=0)
    if family == "hgb":
        return HistGradientBoostingClassifier(random_state=0)
    if family == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=100, random_state=0)
    if family == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(n_estimators=100, random_state=0, verbose=-1)
    if family == "pipeline":
        encode = ColumnTransformer(
            [
                ("text", OneHotEncoder(handle_unknown="ignore"), list(TEXT)),
                ("numbers", StandardScaler(), NUMBERS),
            ]
        )
        return make_pipeline(encode, LogisticRegression(max_iter=1000))
    raise SystemExit(f"unknown family {family!r}")


def batch_form(version: Any) -> dict[str, Any]:
    """Which predictor modelrail chose for large batches at registration, and why not the
    others (the forms record)."""
    from modelrail.scoring.forms.record import BATCH, forms_record

    record = forms_record(version)
    if record is None:
        return {"batch": "library", "tried": {}}
    chosen = record.chosen_for(BATCH)
    tried = {
        t.kind: (f"{t.batch_rows_per_s:,.0f} rows/s at registration" if t.batch_rows_per_s else "-")
        if t.verified
        else f"skipped: {t.reason}"
        for t in record.tried
    }
    found = {"batch": chosen.kind if chosen else "library", "tried": tried}
    if chosen is not None and chosen.details.get("missing") == "library":
        found["rows_with_missing_values"] = "library"
    return found


def train(work: str, pairs: list[str]) -> dict[str, Any]:
    """Fit each FAMILY on the first 10,000 rows of its INPUT (a DataFrame, as a user would),
    pickle it to WORK/FAMILY.pkl and register it as bench-FAMILY in WORK/modelrail-project."""
    from modelrail import Client
    from modelrail.config import init_project, load_settings

    out = Path(work)
    project = out / "modelrail-project"
    if not project.exists():
        project.mkdir()
        init_project(project)
    client = Client(settings=load_settings(cwd=project, environ={}, create=False))
    found: dict[str, Any] = {}
    try:
        for pair in pairs:
            family, input_path = pair.split("=", 1)
            table = pq.ParquetFile(input_path).read_row_group(0).slice(0, TRAIN_ROWS)
            X = table.drop(["id"]).to_pandas()
            y = labels(X)
            model = estimator(family).fit(X, y)
            (out / f"{family}.pkl").write_bytes(pickle.dumps(model))
            version = client.register_model(model, f"bench-{family}", input_example=X.iloc[:5])
            found[family] = {
                "model": DESCRIPTIONS[family],
                "train_rows": len(X),
                "train_accuracy": round(float(model.score(X, y)), 4),
                "missing_values_in_training": int(X.isna().to_numpy().sum()),
                "modelrail_version": version.reference,
                "nullable_inputs": [c.name for c in version.signature.inputs if c.nullable],
                "forms": batch_form(version),
            }
    finally:
        client.close()
    return found


# -- correctness -------------------------------------------------------------------------


def check(input_path: str, model_path: str, rows: int, sample: int, outputs: list[str]) -> Any:
    """Row counts, and a random sample of ids (every id when ``sample`` >= ``rows``)
    compared with the pickled model's own predict and predict_proba."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from modelrail.scoring.forms.record import PROBABILITY_ATOL

    rng = np.random.default_rng(3)
    ids = sorted(int(i) for i in rng.choice(rows, size=min(sample, rows), replace=False))
    picked = ds.dataset(input_path).to_table(filter=pc.field("id").isin(ids))
    frame = picked.to_pandas().set_index("id").loc[ids]
    model = pickle.loads(Path(model_path).read_bytes())
    features = frame[list(model.feature_names_in_)]
    expected_p = np.asarray(model.predict(features))
    expected_q = np.asarray(model.predict_proba(features))[:, 1]
    result: dict[str, Any] = {"sample": len(ids), "tolerance": PROBABILITY_ATOL, "outputs": {}}
    for spec in outputs:
        label, rest = spec.split("=", 1)
        kind, _, tail = rest.partition(":")
        where, _, table = tail.rpartition(":")
        count, found = _read_rows(kind, where, table, ids)
        missing = [i for i in ids if i not in found]
        got_p = np.array([found.get(i, (-1, np.nan))[0] for i in ids])
        got_q = np.array([found.get(i, (-1, np.nan))[1] for i in ids])
        diff = np.abs(got_q - expected_q)
        entry = {
            "rows": count,
            "rows_ok": count == rows,
            "sample_missing": len(missing),
            "prediction_mismatches": int((got_p != expected_p).sum()),
            "max_probability_diff": float(np.nanmax(diff)) if len(ids) else 0.0,
        }
        entry["ok"] = (
            entry["rows_ok"]
            and not missing
            and entry["prediction_mismatches"] == 0
            and entry["max_probability_diff"] <= PROBABILITY_ATOL
        )
        result["outputs"][label] = entry
    return result


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "generate":
        result = generate(args[0], args[1], int(args[2]), int(args[3]))
    elif command == "train":
        result = train(args[0], args[1:])
    elif command == "check":
        result = check(args[0], args[1], int(args[2]), int(args[3]), args[4:])
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

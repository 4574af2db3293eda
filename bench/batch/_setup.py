"""The batch benchmark's untimed steps, each in its own process (run with .venv's Python) so
the driver stays small: a child's ``ru_maxrss`` on Linux starts from the peak of the process
that spawned it, and a small driver keeps that figure the child's own.

    python _setup.py generate FILE ROWS SEED
    python _setup.py train WORK INPUT
    python _setup.py check INPUT MODEL_PKL ROWS SAMPLE LABEL=KIND:WHERE[:TABLE] ...
    python _setup.py decode INPUT

Each prints one JSON line.
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

FEATURES = [f"f{i}" for i in range(30)]
PIECE_ROWS = 100_000  # rows per ParquetWriter.write_table call, so per row group
TRAIN_ROWS = 10_000
PG_CONNINFO = "postgresql://postgres@127.0.0.1:5432/test"


def schema() -> pa.Schema:
    return pa.schema([("id", pa.int64()), *((name, pa.float64()) for name in FEATURES)])


def generate(path: str, rows: int, seed: int) -> dict[str, Any]:
    """id 0..rows-1 and 30 standard-normal float64 features, written piece by piece."""
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, schema()) as writer:
        for start in range(0, rows, PIECE_ROWS):
            count = min(PIECE_ROWS, rows - start)
            values = rng.standard_normal((len(FEATURES), count))
            arrays = [pa.array(np.arange(start, start + count, dtype=np.int64))]
            arrays.extend(pa.array(column) for column in values)
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema()))
    meta = pq.read_metadata(path)
    return {
        "rows": meta.num_rows,
        "row_groups": meta.num_row_groups,
        "bytes": Path(path).stat().st_size,
    }


def train(work: str, input_path: str) -> dict[str, Any]:
    """One LogisticRegression on the first 10,000 rows; pickled, and registered as
    bench-lr:1 in a fresh modelrail project in WORK/modelrail-project."""
    from sklearn.linear_model import LogisticRegression

    from modelrail import Client
    from modelrail.config import init_project, load_settings

    table = pq.ParquetFile(input_path).read_row_group(0).slice(0, TRAIN_ROWS)
    X = table.select(FEATURES).to_pandas()
    weights = np.random.default_rng(1).normal(size=len(FEATURES))
    noise = np.random.default_rng(2).normal(size=len(X))
    y = (X.to_numpy() @ weights + noise > 0).astype(np.int64)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    out = Path(work)
    (out / "model.pkl").write_bytes(pickle.dumps(model))
    X.head(1000).to_parquet(out / "example.parquet", index=False)
    project = out / "modelrail-project"
    project.mkdir()
    init_project(project)
    client = Client(settings=load_settings(cwd=project, environ={}, create=False))
    try:
        with client.start_run("batch-bench") as run:
            version = run.log_model(model, name="bench-lr", input_example=X.head(5))
    finally:
        client.close()
    return {
        "model": "LogisticRegression(max_iter=1000)",
        "train_rows": len(X),
        "train_accuracy": float(model.score(X, y)),
        "modelrail_version": version.reference,
    }


# -- correctness ---------------------------------------------------------------------------


def _read_rows(kind: str, where: str, table: str, ids: list[int]) -> tuple[int, dict[int, Any]]:
    """(row count, {id: (prediction, probability)} for ``ids``) of one output."""
    wanted = ",".join(str(i) for i in ids)
    query = f'SELECT id, prediction, probability FROM "{table}" WHERE id IN ({wanted})'
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(where) as conn:
            count = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            found = conn.execute(query).fetchall()
    elif kind == "postgres":
        import psycopg

        with psycopg.connect(PG_CONNINFO) as conn:
            count = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]  # type: ignore[index]
            found = conn.execute(query).fetchall()
    else:
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        dataset = ds.dataset(where, format="parquet", partitioning="hive")
        count = dataset.count_rows()
        picked = dataset.to_table(
            columns=["id", "prediction", "probability"],
            filter=pc.field("id").isin(ids),
        )
        found = list(zip(*(picked.column(c).to_pylist() for c in picked.column_names), strict=True))
    return int(count), {int(i): (int(p), float(q)) for i, p, q in found}


def check(input_path: str, model_path: str, rows: int, sample: int, outputs: list[str]) -> Any:
    """Row counts, and a random sample of ids compared with scikit-learn and between outputs."""
    rng = np.random.default_rng(3)
    ids = sorted(int(i) for i in rng.choice(rows, size=min(sample, rows), replace=False))
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    picked = ds.dataset(input_path).to_table(filter=pc.field("id").isin(ids))
    frame = picked.to_pandas().set_index("id").loc[ids]
    model = pickle.loads(Path(model_path).read_bytes())
    expected_p = model.predict(frame[FEATURES])
    expected_q = model.predict_proba(frame[FEATURES])[:, 1]
    result: dict[str, Any] = {"sample": len(ids), "outputs": {}}
    first: dict[int, Any] | None = None
    for spec in outputs:
        label, rest = spec.split("=", 1)
        kind, _, tail = rest.partition(":")
        where, _, table = tail.rpartition(":") if kind != "parquet" else (tail, "", "")
        count, found = _read_rows(kind, where, table, ids)
        missing = [i for i in ids if i not in found]
        got_p = np.array([found.get(i, (-1, np.nan))[0] for i in ids])
        got_q = np.array([found.get(i, (-1, np.nan))[1] for i in ids])
        entry = {
            "rows": count,
            "rows_ok": count == rows,
            "sample_missing": len(missing),
            "prediction_mismatches": int((got_p != expected_p).sum()),
            "max_probability_diff_vs_sklearn": float(np.nanmax(np.abs(got_q - expected_q))),
        }
        if first is None:
            first = found
        else:
            other = np.array([first.get(i, (-1, np.nan))[1] for i in ids])
            entry["max_probability_diff_vs_first"] = float(np.nanmax(np.abs(got_q - other)))
            entry["prediction_mismatches_vs_first"] = sum(
                found.get(i, (None,))[0] != first.get(i, (None,))[0] for i in ids
            )
        entry["ok"] = (
            entry["rows_ok"]
            and not missing
            and entry["prediction_mismatches"] == 0
            and entry["max_probability_diff_vs_sklearn"] <= 1e-9
        )
        result["outputs"][label] = entry
    return result


def decode(input_path: str) -> dict[str, Any]:
    """How fast this machine is right now: CPU seconds pyarrow alone takes to decode the input
    on one thread, in 32,768-row batches (best of 3). A shared VM's speed drifts over hours;
    this puts a run's figures beside the machine's own pace."""
    import time

    seconds = []
    for _ in range(3):
        started = time.process_time()
        with pq.ParquetFile(input_path) as file:
            for _batch in file.iter_batches(32_768, use_threads=False):
                pass
        seconds.append(time.process_time() - started)
    return {"decode_cpu_seconds": min(seconds), "all": seconds}


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "generate":
        result = generate(args[0], int(args[1]), int(args[2]))
    elif command == "train":
        result = train(args[0], args[1])
    elif command == "decode":
        result = decode(args[0])
    elif command == "check":
        result = check(args[0], args[1], int(args[2]), int(args[3]), args[4:])
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

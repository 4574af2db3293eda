"""One timed batch job in a fresh process; prints one JSON line with its figures.

    PYTHON _worker.py SIDE SINK --input FILE --model M --output OUT [--table T] [--profile DIR]

SIDE is ``modelrail`` (run_batch, with .venv's Python), ``pandas`` (read_parquet +
scikit-learn + to_sql / to_parquet, with .venv's Python) or ``mlflow`` (pyfunc + to_sql, with
the MLflow virtualenv's Python). SINK is ``sqlite``, ``postgres`` or ``parquet``.

Each side imports its libraries first; the clock starts just before the model is loaded
(which imports scikit-learn on every side, when the pickle is read) and stops when the
output is written and committed. Only the standard library is imported at module level, so
the same file runs in both virtualenvs. ``export-mlflow`` (not timed) saves the benchmark's
pickled model as an MLflow model.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FEATURES = [f"f{i}" for i in range(30)]


def peak_mb() -> dict[str, float]:
    """Peak resident memory of this process: getrusage's ru_maxrss and /proc's VmHWM."""
    found = {"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            found["vmhwm_mb"] = int(line.split()[1]) / 1024
    return found


# -- profiling (all threads: modelrail reads and scores in a second thread) ---------------


@contextmanager
def profiled(folder: str | None) -> Iterator[None]:
    if not folder:
        yield
        return
    import cProfile

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    profiles: list[tuple[str, cProfile.Profile]] = []
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append((self.name, profile))
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main = cProfile.Profile()
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.Thread.run = original  # type: ignore[method-assign]
        main.dump_stats(out / "thread-main.prof")
        for index, (name, profile) in enumerate(profiles):
            profile.dump_stats(out / f"thread-{index}-{name}.prof")


# -- the sides -----------------------------------------------------------------------------


def modelrail_job(args: argparse.Namespace) -> Callable[[], int]:
    import importlib

    from modelrail import Client
    from modelrail.batch.runner import run_batch
    from modelrail.batch.sources import open_source  # noqa: F401  (imported before the clock)
    from modelrail.batch.spec import JobSpec
    from modelrail.config import load_settings

    # The sink's module, as the other sides import their writer's library first; only that
    # one, as `modelrail batch run` imports only the output it writes.
    importlib.import_module(f"modelrail.batch.sinks.{args.sink}")

    if args.preimport:  # a variant: the model flavor's libraries imported before the clock
        import sklearn.linear_model  # noqa: F401
        import skops.io  # noqa: F401

    output = {
        "sqlite": f"sqlite:///{args.output}",
        "postgres": PG_URL.replace("+psycopg", ""),
        "parquet": args.output,
    }[args.sink]

    def job() -> int:
        client = Client(settings=load_settings(cwd=Path(args.model), environ={}, create=False))
        try:
            spec = JobSpec(
                reference="bench-lr:1",
                output=output,
                id_columns=("id",),
                inputs=(args.input,),
                table=args.table if args.sink != "parquet" else None,
                **({"batch_rows": args.batch_rows} if args.batch_rows else {}),
            )
            record = run_batch(client, spec)
        finally:
            client.close()
        if record.status != "succeeded":
            raise SystemExit(f"batch run ended {record.status}: {record.error}")
        return int(record.rows_written)

    return job


def psql_insert_copy(table: Any, conn: Any, keys: list[str], data_iter: Any) -> int:
    """The pandas documentation's COPY recipe for ``to_sql(method=...)``, for psycopg 3
    (``cursor.copy`` in place of psycopg2's ``copy_expert``)."""
    dbapi_conn = conn.connection
    with dbapi_conn.cursor() as cur:
        s_buf = io.StringIO()
        writer = csv.writer(s_buf)
        writer.writerows(data_iter)
        s_buf.seek(0)
        columns = ", ".join(f'"{k}"' for k in keys)
        table_name = f"{table.schema}.{table.name}" if table.schema else table.name
        sql = f"COPY {table_name} ({columns}) FROM STDIN WITH CSV"
        with cur.copy(sql) as copy:
            while data := s_buf.read(1 << 20):
                copy.write(data)
    return 0


def upsert_on_id(table: Any, conn: Any, keys: list[str], data_iter: Any) -> int:
    """The pandas documentation's ``to_sql(method=...)`` recipe for conflicts
    (``insert(...).on_conflict_do_nothing``), made an upsert on the id: what a pandas user
    writes to refresh the rows of ids that are already in a keyed table."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [dict(zip(keys, row, strict=True)) for row in data_iter]
    statement = dialect.insert(table.table).values(rows)
    changed = {k: statement.excluded[k] for k in keys if k != "id"}
    result = conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=changed))
    return int(result.rowcount)


def write_frame(out: Any, args: argparse.Namespace) -> None:
    """What a data scientist writes: to_sql with SQLAlchemy, or to_parquet."""
    if args.sink == "parquet":
        out.to_parquet(args.output, index=False)
        return
    from sqlalchemy import create_engine

    url = f"sqlite:///{args.output}" if args.sink == "sqlite" else PG_URL
    engine = create_engine(url)
    try:
        # An upsert goes into the keyed table an earlier run filled, in chunks within both
        # databases' limits on bound values.
        method: Any = upsert_on_id if args.upsert else None
        if args.sink == "postgres" and not args.upsert:
            method = psql_insert_copy
        mode, chunks = ("append", 10_000) if args.upsert else ("replace", None)
        out.to_sql(args.table, engine, index=False, if_exists=mode, method=method, chunksize=chunks)
    finally:
        engine.dispose()


def pandas_job(args: argparse.Namespace) -> Callable[[], int]:
    import pickle

    import pandas as pd
    import pyarrow.parquet  # noqa: F401  (imported before the clock, like the other sides)
    import sqlalchemy  # noqa: F401

    def job() -> int:
        with open(args.model, "rb") as handle:
            model = pickle.load(handle)
        frame = pd.read_parquet(args.input)
        features = frame[FEATURES]
        out = pd.DataFrame(
            {
                "id": frame["id"],
                "prediction": model.predict(features),
                "probability": model.predict_proba(features)[:, 1],
            }
        )
        write_frame(out, args)
        return len(out)

    return job


def mlflow_job(args: argparse.Namespace) -> Callable[[], int]:
    import mlflow.pyfunc
    import pandas as pd
    import pyarrow.parquet  # noqa: F401
    import sqlalchemy  # noqa: F401

    def job() -> int:
        model = mlflow.pyfunc.load_model(args.model)
        frame = pd.read_parquet(args.input)
        features = frame[FEATURES]
        # pyfunc's predict gives the classes only; the probabilities come from the same
        # loaded model's scikit-learn object.
        out = pd.DataFrame(
            {
                "id": frame["id"],
                "prediction": model.predict(features),
                "probability": model.get_raw_model().predict_proba(features)[:, 1],
            }
        )
        write_frame(out, args)
        return len(out)

    return job


def export_mlflow(pickle_path: str, example_path: str, out: str) -> None:
    import pickle

    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    with open(pickle_path, "rb") as handle:
        model = pickle.load(handle)
    example = pd.read_parquet(example_path)[FEATURES]
    signature = infer_signature(example, model.predict(example))
    mlflow.sklearn.save_model(model, out, signature=signature, input_example=example.head(5))
    print(json.dumps({"saved": out}))


def main() -> None:
    if sys.argv[1:2] == ["export-mlflow"]:
        export_mlflow(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=("modelrail", "pandas", "mlflow"))
    parser.add_argument("sink", choices=("sqlite", "postgres", "parquet"))
    parser.add_argument("--input", required=True)
    parser.add_argument("--model", required=True, help="project folder, pickle or MLflow model")
    parser.add_argument("--output", default="", help="SQLite file or Parquet path/folder")
    parser.add_argument("--table", default="predictions")
    parser.add_argument("--profile", default=None, help="folder for cProfile files")
    parser.add_argument("--preimport", action="store_true", help="modelrail: import sklearn first")
    parser.add_argument("--batch-rows", type=int, default=0, help="modelrail: JobSpec.batch_rows")
    parser.add_argument("--upsert", action="store_true", help="pandas, mlflow: upsert on id")
    args = parser.parse_args()
    job = {"modelrail": modelrail_job, "pandas": pandas_job, "mlflow": mlflow_job}[args.side](args)
    before = peak_mb()
    with profiled(args.profile):
        started, cpu_started = time.perf_counter(), time.process_time()
        rows = job()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    result = {"side": args.side, "sink": args.sink, "rows": rows, "seconds": seconds}
    result["cpu_seconds"] = cpu_seconds  # all threads: what the job costs the machine
    result |= peak_mb() | {"imports_" + k: v for k, v in before.items()}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

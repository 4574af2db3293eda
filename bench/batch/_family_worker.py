"""One timed by-family batch job in a fresh process (.venv's Python); prints one JSON line.

    python _family_worker.py SIDE SINK --family F --input FILE --model M [--output OUT]
        [--table T] [--profile DIR] [--batch-rows N]

SIDE is ``modelrail`` (``run_batch`` of ``bench-F:1`` in the project folder M) or ``pandas``
(the pickle M, ``pd.read_parquet``, the library's ``predict_proba`` on the DataFrame, then
``to_sql``: plain into SQLite, with the pandas documentation's COPY recipe into PostgreSQL).
SINK is ``sqlite`` or ``postgres``. As in ``_worker.py``, each side imports its libraries
first; the clock starts just before the model is loaded (which imports the model's library
on either side) and stops once the output is written and committed.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from _worker import PG_URL, peak_mb, profiled, write_frame


def modelrail_job(args: argparse.Namespace) -> Callable[[], int]:
    import importlib

    from modelrail import Client
    from modelrail.batch.runner import run_batch
    from modelrail.batch.sources import open_source  # noqa: F401  (imported before the clock)
    from modelrail.batch.spec import JobSpec
    from modelrail.config import load_settings

    # Only the sink's module, as `modelrail batch run` imports only the output it writes.
    importlib.import_module(f"modelrail.batch.sinks.{args.sink}")
    output = f"sqlite:///{args.output}" if args.sink == "sqlite" else PG_URL.replace("+psycopg", "")

    def job() -> int:
        client = Client(settings=load_settings(cwd=Path(args.model), environ={}, create=False))
        try:
            spec = JobSpec(
                reference=f"bench-{args.family}:1",
                output=output,
                id_columns=("id",),
                inputs=(args.input,),
                table=args.table,
                **({"batch_rows": args.batch_rows} if args.batch_rows else {}),
            )
            record = run_batch(client, spec)
        finally:
            client.close()
        if record.status != "succeeded":
            raise SystemExit(f"batch run ended {record.status}: {record.error}")
        return int(record.rows_written)

    return job


def pandas_job(args: argparse.Namespace) -> Callable[[], int]:
    import pickle

    import pandas as pd
    import pyarrow.parquet  # noqa: F401  (imported before the clock, like the other side)
    import sqlalchemy  # noqa: F401

    def job() -> int:
        with open(args.model, "rb") as handle:
            model = pickle.load(handle)
        frame = pd.read_parquet(args.input)
        # One predict_proba; the classes from it, as predict does (and as the serving
        # benchmark's plain FastAPI app answers): calling predict too would score twice.
        probabilities = model.predict_proba(frame[list(model.feature_names_in_)])
        out = pd.DataFrame(
            {
                "id": frame["id"],
                "prediction": model.classes_[probabilities.argmax(axis=1)],
                "probability": probabilities[:, 1],
            }
        )
        write_frame(out, argparse.Namespace(**vars(args), upsert=False))
        return len(out)

    return job


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("side", choices=("modelrail", "pandas"))
    parser.add_argument("sink", choices=("sqlite", "postgres"))
    parser.add_argument("--family", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--model", required=True, help="modelrail project folder, or pickle")
    parser.add_argument("--output", default="", help="SQLite file")
    parser.add_argument("--table", default="predictions")
    parser.add_argument("--profile", default=None, help="folder for cProfile files")
    parser.add_argument("--batch-rows", type=int, default=0, help="modelrail: JobSpec.batch_rows")
    args = parser.parse_args()
    job = {"modelrail": modelrail_job, "pandas": pandas_job}[args.side](args)
    before = peak_mb()
    with profiled(args.profile):
        started, cpu_started = time.perf_counter(), time.process_time()
        rows = job()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    result = {"side": args.side, "sink": args.sink, "family": args.family, "rows": rows}
    result |= {"seconds": seconds, "cpu_seconds": cpu_seconds}
    result |= peak_mb() | {"imports_" + k: v for k, v in before.items()}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""Re-run benchmark: scoring the same 1,000,000 ids again into the SQLite and PostgreSQL
tables that hold them, as a nightly job does. modelrail's run_batch against pandas +
scikit-learn with the pandas documentation's ``to_sql(method=...)`` conflict recipe made an
upsert on the id; one machine, one invocation.

    .venv/bin/python bench/batch/rerun.py [--quick] [--repeats N]

Each side first fills its own table once (untimed; pandas' table then gets the primary key
its upsert needs), then the sides alternate, each timed run scoring the whole input again into
the table its previous run left. Data, model and worker are those of run.py; results are
printed and written to bench/.work/batch-rerun-results.json.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import run as bench  # the batch benchmark's helpers (this folder is on sys.path)

RESULTS = bench.WORK / "batch-rerun-results.json"
SIDES = ("modelrail", "pandas")
METHOD = (
    "each side re-scores the whole input into the table its previous run filled: "
    "modelrail keyed on id by its own run (upserts in place in SQLite, a staged delete and "
    "insert in PostgreSQL); pandas to_sql(if_exists='append', chunksize=10_000, "
    "method=upsert_on_id), with a primary key on id added after its first, untimed, fill",
    "one fresh process per job, timed as in run.py; the sides alternate, median of the repeats",
)


def add_key(sink: str, output: str, table: str) -> None:
    if sink == "sqlite":  # SQLite adds no key to a table that exists: a unique index does
        with sqlite3.connect(output) as conn:
            conn.execute(f'CREATE UNIQUE INDEX "{table}_id" ON "{table}" (id)')
        return
    import psycopg

    with psycopg.connect(bench.PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY (id)')


def rerun_row(sink: str, work: Path, data: Path, rows: int, repeats: int) -> bench.Row:
    name = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[sink]
    row = bench.Row(f"re-run: {name} {rows:,} rows", rows, "pandas + sklearn + to_sql upsert")
    output = str(work / "rerun.db") if sink == "sqlite" else ""
    if sink == "postgres":
        bench.drop_tables(*(bench.TABLES[side] for side in SIDES))
    for side in SIDES:  # the first fill, untimed
        bench.job(side, sink, work, data, output)
    add_key(sink, output, bench.TABLES["pandas"])
    bench.announce(f"re-run: {name}, {rows:,} rows")
    samples: dict[str, list[bench.Sample]] = {side: [] for side in SIDES}
    for repeat in range(repeats):
        for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
            extra = ("--upsert",) if side == "pandas" else ()
            sample = bench.job(side, sink, work, data, output, extra)
            samples[side].append(sample)
            print(
                f"  {bench.LABELS.get(side, side):<18} {sample.rows / sample.seconds:>12,.0f} "
                f"rows/s  {sample.seconds:6.2f} s (CPU {sample.cpu_seconds:5.2f} s)  "
                f"peak {sample.peak_mb:6.0f} MB",
                flush=True,
            )
    row.modelrail, row.other = samples["modelrail"], samples["pandas"]
    where = f"sqlite:{output}" if sink == "sqlite" else "postgres:"
    outputs = {side: f"{where}:{bench.TABLES[side]}" for side in SIDES}
    bench.verify(row, data, work, rows, outputs)
    if sink == "postgres":
        bench.drop_tables(*(bench.TABLES[side] for side in SIDES))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side and database")
    args = parser.parse_args()
    rows, repeats = (200_000, 1) if args.quick else (1_000_000, args.repeats)
    started = time.perf_counter()
    info = bench.machine() | {"source": bench.source_state(bench.source_files())}
    bench.byte_compile()
    bench.notes.extend(METHOD)
    with tempfile.TemporaryDirectory(prefix="modelrail-rerun-bench-") as tmp:
        work = Path(tmp)
        data = work / "input.parquet"
        print(f"generating {rows:,} rows and training the model ...", flush=True)
        info["input"] = str(bench.setup_step("generate", str(data), str(rows), "0", cwd=work))
        bench.setup_step("train", str(work), str(data), cwd=work)
        results = [rerun_row(sink, work, data, rows, repeats) for sink in ("sqlite", "postgres")]
    bench.notes.append(f"whole benchmark took {(time.perf_counter() - started) / 60:.1f} min")
    print(f"\nmachine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}")
    print(f"command: {bench.command_line()}\nsource: {info['source']}\n")
    print(bench.table(results))
    print("\nchecks:")
    for row in results:
        for label, entry in row.checks["outputs"].items():
            state = "ok" if entry["ok"] else "WRONG"
            print(f"  {row.scenario} / {label}: rows {entry['rows']:,}, {state}")
    print("\nnotes:\n" + "\n".join(f"  - {note}" for note in bench.notes))
    bench.write_results(RESULTS, {"machine": info, "results": [r.summary() for r in results]})
    print(f"\nwritten to {RESULTS.relative_to(bench.ROOT)}")


if __name__ == "__main__":
    main()

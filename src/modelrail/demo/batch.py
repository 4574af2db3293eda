"""The last part of the demo: what prod holds scores every patient into a SQLite table,
twice, to show that a re-run replaces its rows instead of adding to them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
from rich.console import Console

from modelrail.batch import JobSpec, run_batch
from modelrail.client import Client

TABLE = "cancer_scores"


def run_batch_story(client: Client, model: str, patients: pd.DataFrame, out: Console) -> None:
    root = client.settings.project_root
    data = root / "data" / "patients.parquet"
    data.parent.mkdir(exist_ok=True)
    patients.to_parquet(data, index=False)
    spec = JobSpec(
        reference=f"{model}@prod",
        inputs=(str(data.relative_to(root)),),
        output="sqlite:///scores.db",
        table=TABLE,
        id_columns=("patient_id",),
    )
    out.print("\n[bold]batch scoring[/]: what prod holds scores every patient into SQLite")
    out.print(
        f"$ modelrail batch run {spec.reference} -i {spec.inputs[0]} -o {spec.output} "
        f"--table {TABLE} --id-column patient_id"
    )
    first = run_batch(client, spec)
    out.print(
        f"batch run {first.id[:12]} {first.status}: {first.model} {first.version} wrote "
        f"{first.rows_written:,} rows to {TABLE}"
    )
    again = run_batch(client, spec)
    rows, runs = _table_counts(root / "scores.db")
    out.print(
        f"run again (batch run {again.id[:12]}): the table still has {rows:,} rows, all from "
        f"{runs} run; `modelrail batch history` lists both"
    )


def _table_counts(database: Path) -> tuple[int, int]:
    with sqlite3.connect(database) as conn:
        rows, runs = conn.execute(
            f"SELECT count(*), count(DISTINCT batch_run_id) FROM {TABLE}"
        ).fetchone()
    conn.close()
    return int(rows), int(runs)

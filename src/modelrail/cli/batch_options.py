"""The options that describe a batch job, shared by ``batch run`` and ``batch schedule``."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from modelrail.batch.spec import DEFAULT_BATCH_ROWS, DEFAULT_PART_ROWS, JobSpec
from modelrail.client import Client
from modelrail.errors import BatchInputError
from modelrail.object_store import is_object_store

InputOption = Annotated[
    list[str] | None,
    typer.Option(
        "--input", "-i", help="Parquet or CSV files, globs or folders to score (repeatable)."
    ),
]
QueryOption = Annotated[
    str | None, typer.Option("--query", help="SQL query whose rows to score (with --query-url).")
]
QueryUrlOption = Annotated[
    str | None, typer.Option("--query-url", help="Database URL the --query runs against.")
]
OutputOption = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="sqlite:///FILE, postgresql://..., redis://... or a folder for Parquet.",
    ),
]
TableOption = Annotated[
    str | None, typer.Option("--table", help="Output table (SQL) or key prefix (Redis).")
]
IdOption = Annotated[
    list[str] | None,
    typer.Option("--id-column", help="Input column that identifies a row (repeatable)."),
]
EnvOption = Annotated[
    str | None,
    typer.Option("--env", help="Take --output and --table from this environment's settings."),
]
TtlOption = Annotated[
    int | None, typer.Option("--ttl", help="Redis keys expire after this many seconds.", min=1)
]
BadRowsOption = Annotated[
    str,
    typer.Option(
        "--on-bad-rows",
        help="'fail': stop before writing; 'skip': set bad rows aside in a rejects table.",
    ),
]
BatchRowsOption = Annotated[
    int, typer.Option("--batch-rows", help="Rows scored and written at a time.", min=1)
]
PartRowsOption = Annotated[
    int,
    typer.Option(
        "--part-rows",
        help="Parquet output: rows per part file (whole batches); a killed run resumes "
        "after its last whole part.",
        min=1,
    ),
]
EngineOption = Annotated[
    str, typer.Option("--engine", help="'local', or 'spark' (pip install 'modelrail[spark]').")
]


def job_spec_from_options(
    client: Client,
    reference: str,
    *,
    inputs: list[str] | None,
    query: str | None,
    query_url: str | None,
    output: str | None,
    table: str | None,
    id_columns: list[str] | None,
    env: str | None,
    ttl: int | None,
    on_bad_rows: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    part_rows: int = DEFAULT_PART_ROWS,
    engine: str = "local",
) -> JobSpec:
    """The job these options describe; ``--env`` fills what ``--output`` / ``--table`` leave."""
    if output is not None:
        output = _from_here(output)
    if env is not None:
        settings = client.policy.environment(env).settings
        # batch_output in modelrail.toml stays relative to the project, like every setting.
        output = output or settings.get("batch_output")
        table = table or settings.get("batch_table")
        if not output:
            raise BatchInputError(
                f"--env {env}: [environments.{env}.settings] has no batch_output, and no "
                "--output was given"
            )
    if not output:
        raise BatchInputError("give --output (or --env ENV with a batch_output setting)")
    return JobSpec(
        reference=reference,
        output=output,
        table=table,
        id_columns=tuple(id_columns or ()),
        inputs=tuple(
            path if is_object_store(path) else os.path.abspath(path) for path in inputs or ()
        ),
        query=query,
        query_url=query_url,
        ttl_seconds=ttl,
        on_bad_rows=on_bad_rows,  # type: ignore[arg-type]  # JobSpec checks the value
        batch_rows=batch_rows,
        part_rows=part_rows,
        engine=engine,  # type: ignore[arg-type]
    )


def _from_here(output: str) -> str:
    """A relative folder or SQLite file on the command line means one under the working
    folder, as the shell would take it (the library takes it under the project)."""
    if output.startswith("sqlite:///") and not output.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(output.removeprefix("sqlite:///"))
    if "://" in output:
        return output
    return os.path.abspath(output)

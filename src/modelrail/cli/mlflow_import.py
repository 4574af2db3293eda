"""``modelrail import-mlflow SOURCE``: an MLflow tracking store's history brought in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import JsonOption, console, print_json, stderr_progress
from modelrail.errors import InvalidInputError
from modelrail.portability.mlflow_import import MlflowImportSummary, Progress


def import_mlflow(
    source: Annotated[
        str,
        typer.Argument(
            help="The MLflow store: sqlite:///mlflow.db, postgresql://..., an mlruns folder, "
            "or an MLflow server's http(s):// URL."
        ),
    ],
    trust_pickles: Annotated[
        bool,
        typer.Option(
            "--trust-pickles",
            help="Load models MLflow saved with pickle or cloudpickle (this can run any code "
            "they name) to convert them into skops; without it they stay as files.",
        ),
    ] = False,
    env_map: Annotated[
        list[str] | None,
        typer.Option(
            "--env-map",
            help="LABEL=ENV: put versions with this MLflow alias or stage into environment "
            "ENV (repeatable). Defaults: Production=prod, Staging=staging, and an alias "
            "named like an environment goes there.",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", help="Runs written per transaction.", min=1),
    ] = 500,
    as_json: JsonOption = False,
) -> None:
    """Import experiments, runs (params, every metric step, tags, artifacts, git commit),
    registered model versions and their aliases or stages from an MLflow tracking store.
    Importing again changes nothing; an import that was stopped continues where it stopped."""
    environments = _mapping(env_map or [])
    with open_client() as client, _bar(as_json) as progress:
        summary = client.import_mlflow(
            source,
            trust_pickles=trust_pickles,
            environments=environments,
            batch_size=batch_size,
            progress=progress,
        )
    if as_json:
        print_json(summary.to_json())
        return
    _render(summary)


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        label, sep, environment = pair.partition("=")
        if not sep or not label.strip() or not environment.strip():
            raise InvalidInputError(
                f"{{environments}} takes LABEL=ENV (e.g. champion=prod), not {pair!r}",
                params=("environments",),
            )
        mapping[label.strip()] = environment.strip()
    return mapping


def _render(summary: MlflowImportSummary) -> None:
    out = console()
    versions = summary.versions_imported
    out.print(
        f"imported from {summary.source}: {summary.runs_imported} run(s) "
        f"({summary.metric_points:,} metric points, {summary.artifacts} file(s)) in "
        f"{summary.experiments} experiment(s), {len(versions)} model version(s)"
        + (f" ({', '.join(versions)})" if versions else ""),
        markup=False,
        highlight=False,
    )
    if summary.runs_present or summary.versions_present:
        out.print(
            f"already here: {summary.runs_present} run(s), "
            f"{len(summary.versions_present)} version(s)",
            markup=False,
        )
    for placed in summary.placed:
        out.print(f"placed {placed}", markup=False, highlight=False)
    for label, name in summary.renamed.items():
        out.print(f"renamed {label} -> {name}", markup=False, highlight=False)
    if summary.skipped:
        table = Table(title="skipped", title_justify="left")
        table.add_column("what")
        table.add_column("why")
        for skipped in summary.skipped:
            table.add_row(skipped.what, skipped.reason)
        out.print(table)
    if not summary.changed:
        out.print("nothing new to import", markup=False)


class _Bar:
    """A Rich progress bar on stderr, one task per phase (runs, then each model)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.tasks: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)


@contextmanager
def _bar(as_json: bool) -> Iterator[Progress | None]:
    with stderr_progress(as_json, in_bytes=False) as bar:
        yield None if bar is None else _Bar(bar)


def register(app: typer.Typer) -> None:
    app.command("import-mlflow")(import_mlflow)

"""``modelrail runs``: the model tracker table, one run, a diff, the best run."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import (
    MAX_COUNT,
    JsonOption,
    console,
    format_duration,
    format_time,
    key_value_table,
    print_csv,
    print_json,
)
from modelrail.entities import TrackerPage
from modelrail.portability.reproduce_plan import REPRODUCTION_TAG
from modelrail.store.tracker_query import TrackerQuery
from modelrail.tracking.diff import diff_runs
from modelrail.tracking.tracker_columns import cells, component_note, format_metric, header

app = typer.Typer(help="The model tracker: runs, what went into them, and their results.")


@app.callback(invoke_without_command=True)
def tracker(
    ctx: typer.Context,
    experiment: Annotated[str | None, typer.Option(help="Only runs of this experiment.")] = None,
    model: Annotated[str | None, typer.Option(help="Only versions of this model.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="Metric column to show (repeatable).")
    ] = None,
    sort: Annotated[
        str, typer.Option(help="'started', 'version' or a metric name (largest first).")
    ] = "started",
    ascending: Annotated[bool, typer.Option("--asc", help="Sort smallest first.")] = False,
    limit: Annotated[int, typer.Option(help="Rows to show.", min=0, max=MAX_COUNT)] = 50,
    offset: Annotated[int, typer.Option(help="Rows to skip.", min=0, max=MAX_COUNT)] = 0,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show the model tracker: one row per model version, with the version of every input."""
    if ctx.invoked_subcommand is not None:
        return
    query = TrackerQuery(
        experiment=experiment,
        model=model,
        metrics=tuple(metric or ()),
        sort=sort,
        ascending=ascending,
        limit=limit,
        offset=offset,
    )
    with open_client() as client:
        page = client.tracker(query)
    if as_json:
        print_json({"total": page.total, "metric_keys": page.metric_keys, "rows": page.rows})
    elif as_csv:
        keys = page.metric_keys
        print_csv(header(keys), (cells(row, keys, plain=True) for row in page.rows))
    else:
        print_tracker(page, console())


def print_tracker(page: TrackerPage, out: Console) -> None:
    table = Table(title="model tracker", title_justify="left")
    for name in header(page.metric_keys):
        table.add_column(name, no_wrap=True)
    for row in page.rows:
        style = "red" if row.status == "failed" else None
        table.add_row(*cells(row, page.metric_keys, plain=False), style=style)
    out.print(table)
    if page.total > len(page.rows):
        out.print(f"{len(page.rows)} of {page.total} rows shown (use --limit / --offset)")


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix.")],
    as_json: JsonOption = False,
) -> None:
    """Everything about one run: components, params, metrics, provenance, artifacts."""
    with open_client() as client:
        run = client.get_run(run_id)
    if as_json:
        print_json(run)
        return
    out = console()
    git = run.provenance.get("git") or {}
    entry = run.provenance.get("entry_point") or {}
    env = run.provenance.get("environment") or {}
    out.print(
        key_value_table(
            f"run {run.id}",
            [
                ("experiment", run.experiment),
                ("name", run.name),
                ("status", run.status),
                ("architecture", run.architecture),
                ("user", run.user),
                ("started", format_time(run.started_at)),
                ("duration", format_duration(run.duration)),
                ("error", run.error),
                ("git commit", git.get("commit")),
                ("git branch", git.get("branch")),
                ("git remote", git.get("remote")),
                ("uncommitted changes", _dirty(git, run.provenance.get("code_snapshot"))),
                (
                    "entry point",
                    " ".join([entry.get("script") or "(interactive)", *entry.get("arguments", [])]),
                ),
                ("command line", " ".join(entry.get("command") or []) or None),
                ("working folder", entry.get("cwd")),
                ("reproduction of", run.tags.get(REPRODUCTION_TAG)),
                ("python", env.get("python_version")),
                ("os / machine", f"{env.get('os')} {env.get('os_release')} / {env.get('machine')}"),
                ("models", ", ".join(f"{m.model}:{m.version}" for m in run.model_versions) or None),
            ],
        )
    )
    components = Table(title="components", title_justify="left")
    for column in ("role", "version", "fingerprint", "lineage", "details"):
        components.add_column(column)
    for role, cv in run.components.items():
        components.add_row(
            role, cv.label, cv.fingerprint[:12], cv.lineage, component_note(cv.details)
        )
    out.print(components)
    out.print(key_value_table("params", sorted(run.params.items())))
    out.print(
        key_value_table(
            "metrics", [(k, format_metric(k, v)) for k, v in sorted(run.metrics.items())]
        )
    )
    if run.artifacts:
        out.print(
            key_value_table(
                "artifacts",
                [(a.path, f"{a.size} bytes  sha256 {a.sha256[:12]}") for a in run.artifacts],
            )
        )


def _dirty(git: dict[str, object], snapshot: dict[str, Any] | None) -> str | None:
    if not git:
        return None
    untracked = len((snapshot or {}).get("untracked") or ())
    extra = f", {untracked} untracked files stored" if untracked else ""
    if not git.get("dirty"):
        return f"no{extra}"
    stored = "diff stored" if (snapshot or {}).get("diff") else "diff not stored"
    return f"yes ({stored}, sha256 {str(git.get('diff_sha256'))[:12]}{extra})"


@app.command("diff")
def diff(
    run_a: Annotated[str, typer.Argument(help="The earlier run.")],
    run_b: Annotated[str, typer.Argument(help="The later run.")],
    as_json: JsonOption = False,
) -> None:
    """What changed between two runs: components, params, metrics and package versions."""
    with open_client() as client:
        result = diff_runs(client.get_run(run_a), client.get_run(run_b))
    if as_json:
        print_json(
            {
                "run_a": result.run_a.id,
                "run_b": result.run_b.id,
                "components": result.components,
                "params": result.params,
                "metrics": result.metrics,
                "packages": result.packages,
            }
        )
        return
    out = console()
    out.print(f"run {result.run_a.short_id} -> run {result.run_b.short_id}")
    table = Table(title="components", title_justify="left")
    for column in ("component", "from", "to", "what changed"):
        table.add_column(column)
    for change in result.components:
        table.add_row(change.role, change.before or "-", change.after or "-", change.note)
    out.print(table if result.components else "components: all the same")
    for title, changes in (("params", result.params), ("packages", result.packages)):
        if changes:
            out.print(
                key_value_table(title, [(c.key, f"{c.before} -> {c.after}") for c in changes])
            )
        else:
            out.print(f"{title}: no changes")
    if result.metrics:
        rows = []
        for c in result.metrics:
            delta = ""
            if isinstance(c.before, float) and isinstance(c.after, float):
                delta = f"  ({c.after - c.before:+.4g})"
            rows.append(
                (
                    c.key,
                    f"{format_metric(c.key, c.before)} -> {format_metric(c.key, c.after)}{delta}",
                )
            )
        out.print(key_value_table("metrics", rows))


@app.command("best")
def best(
    metric: Annotated[str, typer.Option(help="Metric to rank by.")],
    minimize: Annotated[bool, typer.Option("--min", help="Smaller is better (e.g. loss).")] = False,
    experiment: Annotated[str | None, typer.Option(help="Only runs of this experiment.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The run with the best value of a metric, and the model version it produced."""
    with open_client() as client:
        run = client.best_run(metric, minimize=minimize, experiment=experiment)
    if as_json:
        print_json(run)
        return
    versions = ", ".join(f"{m.model}:{m.version}" for m in run.model_versions) or "no model"
    console().print(
        f"best by {metric} ({'smallest' if minimize else 'largest'}): run {run.short_id} "
        f"({versions}) {metric} = {format_metric(metric, run.metrics[metric])}"
    )

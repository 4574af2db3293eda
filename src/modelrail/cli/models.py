"""``modelrail models``: registered models and their versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import typer
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.render import (
    JsonOption,
    console,
    format_metric,
    format_time,
    key_value_table,
    print_json,
)
from modelrail.entities import ModelVersion
from modelrail.gates import PICKLE, SHIPPED_CODE, load_risk
from modelrail.refs import Ref
from modelrail.scoring.forms.record import describe, forms_record, summary_lines

app = typer.Typer(help="Registered models and their numbered versions.")


@app.callback(invoke_without_command=True)
def list_models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List every model with its number of versions and latest version."""
    if ctx.invoked_subcommand is not None:
        return
    with open_client() as client:
        models = client.list_models()
    if as_json:
        print_json(models)
        return
    table = Table(title="models", title_justify="left")
    for column in ("model", "versions", "latest", "created"):
        table.add_column(column)
    for model in models:
        table.add_row(
            model.name,
            str(model.version_count),
            str(model.latest_version or "-"),
            format_time(model.created_at),
        )
    console().print(table)


@app.command("show")
def show(
    reference: Annotated[
        str,
        typer.Argument(
            help="Model name for every version, or NAME:VERSION / NAME@ENV for one in detail."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Every version of a model, or one version in detail.

    Each version's run, flavor (and whether loading it runs a pickle, which is unsafe, or
    code shipped with it), artifact sha256, inputs and metrics."""
    ref = Ref.parse(reference)
    one = ref.version is not None or ref.environment is not None
    with open_client() as client:
        versions = [client.get_model_version(ref)] if one else client.list_versions(ref.name)
        metrics = {
            v.version: (client.get_run(v.run_id).metrics if v.run_id else {}) for v in versions
        }
        policy = client.policy
        refusing = [e for e in policy.chain if not policy.environment(e).gates.allow_pickle]
    if as_json:
        plain = [
            {**_plain(v), **_risks(v), "metrics": metrics[v.version], "predictors": _predictors(v)}
            for v in versions
        ]
        print_json(plain[0] if one else plain)
        return
    if one:
        console().print(_detail(versions[0], metrics[versions[0].version], refusing))
        return
    table = Table(title=f"model {ref.name}", title_justify="left")
    for column in ("version", "run", "flavor", "sha256", "inputs", "metrics", "created", "by"):
        table.add_column(column)
    for v in versions:
        shown = ", ".join(
            f"{k} {format_metric(k, val)}" for k, val in sorted(metrics[v.version].items())[:4]
        )
        risk = load_risk(v)
        table.add_row(
            str(v.version),
            (v.run_id or "-")[:8],
            v.flavor + ("" if risk is None else f" [{_STYLE[risk]}]({_SHORT[risk]})[/]"),
            v.artifact_sha256[:12],
            f"{len(v.signature.inputs)} columns",
            shown or "-",
            format_time(v.created_at),
            v.created_by,
        )
    console().print(table)


@app.command("compile")
def compile_version(
    reference: Annotated[
        str, typer.Argument(help="The version to build predictor forms for: NAME:VERSION.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Build, verify and time the fast predictor forms of a version (ONNX Runtime, Treelite,
    compiled linear) and record the fastest per workload; for versions registered before
    forms existed, or before a runtime was installed. The version itself does not change."""
    with open_client() as client, console().status(f"compiling {reference}"):
        version = client.compile_model(Ref.parse(reference))
    if as_json:
        print_json({"reference": version.reference, "predictors": _predictors(version)})
        return
    lines = summary_lines(forms_record(version), version.flavor)
    console().print(key_value_table(f"predictors of {version.reference}", _predictor_pairs(lines)))


@app.command("profile")
def profile_version(
    reference: Annotated[
        str, typer.Argument(help="The version to profile: NAME:VERSION or NAME@ENV.")
    ],
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="ROLE=PATH: where a dataset is now, if not where the run read it, or the "
            "data of a version registered outside a run (e.g. test=/data/test.parquet; "
            "repeatable).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Make the reference profile of a version registered without one (before profiles
    existed), for drift monitoring and live-data gates: its run's datasets are read again,
    checked against their recorded fingerprints, and profiled, and the model predicts the
    test data. A version that has a profile keeps it (exit 5)."""
    from modelrail.cli.reproduce import data_places

    places = data_places(data or [])
    with open_client() as client, console().status(f"profiling {reference}"):
        version = client.get_model_version(Ref.parse(reference))
        profile = client.profile_version(version.reference, places)
    if as_json:
        print_json({"reference": version.reference, "profile": profile.to_json()})
        return
    datasets = ((profile.train_label, profile.train), (profile.test_label, profile.test))
    parts = [
        f"{label} ({len(found.columns)} columns, {found.rows:,} rows)"
        for label, found in datasets
        if found is not None
    ]
    if profile.prediction is not None:
        parts.append(f"predictions on the {profile.prediction_data} data")
    console().print(f"profiled {version.reference}: {', '.join(parts) or 'nothing'}")
    for note in profile.notes[:-1]:  # the last one says it was made after registration
        console().print(f"  note: {note}")


def _predictors(version: ModelVersion) -> dict[str, object]:
    return describe(forms_record(version), version.flavor)


def _predictor_pairs(lines: list[str]) -> list[tuple[str, object]]:
    return [("predictor" if i == 0 else "", line) for i, line in enumerate(lines)]


# How ``show`` marks what loading a version runs.
_SHORT = {PICKLE: "UNSAFE: pickle", SHIPPED_CODE: "runs shipped code"}
_STYLE = {PICKLE: "bold red", SHIPPED_CODE: "yellow"}


def _risks(version: ModelVersion) -> dict[str, bool]:
    risk = load_risk(version)
    return {"unsafe": risk == PICKLE, "runs_code": risk == SHIPPED_CODE}


def _detail(version: ModelVersion, metrics: Mapping[str, float], refusing: list[str]) -> Table:
    details = version.flavor_details
    risk = load_risk(version)
    code = details.get("code")
    files = code if isinstance(code, dict) else {}
    packages = details.get("packages")
    if risk == PICKLE:
        where = ", ".join(refusing) or "no environment of this project"
        loading = (
            f"[{_STYLE[risk]}]UNSAFE[/]: saved with allow_pickle=True; loading a pickle can "
            f"run any code. Refused by {where} (allow_pickle = false)"
        )
    elif risk == SHIPPED_CODE:
        loading = (
            f"[{_STYLE[risk]}]runs shipped code[/]: loading imports the code below "
            f"({len(files)} file{'' if len(files) == 1 else 's'}, each sha256-checked); the "
            "state is skops data, not a pickle"
        )
    else:
        loading = f"safe: {details.get('format') or version.flavor}, loaded as data"
    pairs: list[tuple[str, object]] = [
        ("loading", loading),
        ("flavor", version.flavor),
        ("format", details.get("format")),
        ("estimator", details.get("estimator")),
        ("run", version.run_id),
        ("sha256", f"{version.artifact_sha256} ({version.artifact_size} bytes)"),
        ("inputs", _columns(version)),
        *_predictor_pairs(summary_lines(forms_record(version), version.flavor)),
    ]
    if isinstance(packages, dict):
        pairs.append(("packages", ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))))
    for index, (path, digest) in enumerate(sorted(files.items())):
        pairs.append(("code" if index == 0 else "", f"{path}  sha256 {digest}"))
    shown = ", ".join(f"{k} {format_metric(k, v)}" for k, v in sorted(metrics.items()))
    pairs.append(("metrics", shown or None))
    pairs.append(("created", f"{format_time(version.created_at)} by {version.created_by}"))
    if version.description:
        pairs.append(("description", version.description))
    return key_value_table(f"model version {version.reference}", pairs)


def _columns(version: ModelVersion, most: int = 8) -> str:
    inputs = version.signature.inputs
    shown = ", ".join(f"{c.name} {c.dtype}" for c in inputs[:most])
    more = f", ... ({len(inputs)} columns)" if len(inputs) > most else ""
    return shown + more


def _plain(version: object) -> dict[str, object]:
    from modelrail.cli.render import to_plain

    result = to_plain(version)
    assert isinstance(result, dict)
    return result

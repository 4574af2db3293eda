"""Environment commands: promote, approve, reject, rollback, history, envs, requests."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from modelrail.cli.context import open_client
from modelrail.cli.flags import error_message
from modelrail.cli.render import JsonOption, console, format_time, print_json
from modelrail.entities import EnvironmentEvent, GateResult
from modelrail.errors import GateFailedError
from modelrail.refs import MAX_VERSION

ReasonOption = Annotated[str, typer.Option("--reason", "-r", help="Why; kept in the history.")]
# Request numbers are kept as 32-bit integers, like versions.
RequestArgument = Annotated[
    int, typer.Argument(help="The approval request number.", min=1, max=MAX_VERSION)
]


def print_gates(results: Sequence[object], out: Console) -> None:
    if not results:
        return
    table = Table(box=None, pad_edge=False)
    for column in ("gate", "result", ""):
        table.add_column(column)
    for result in results:
        assert isinstance(result, GateResult)
        verdict = "[green]pass[/]" if result.passed else "[bold red]FAIL[/]"
        table.add_row(result.gate, verdict, result.detail)
    out.print(table)


@contextmanager
def _showing_failed_gates(out: Console, as_json: bool, verb: str) -> Iterator[None]:
    """On a gate failure, show every gate's result before the error line."""
    try:
        yield
    except GateFailedError as exc:
        if as_json:
            print_json({verb: False, "error": error_message(exc), "gates": exc.results})
        else:
            print_gates(exc.results, out)
        raise


def promote(
    reference: Annotated[str, typer.Argument(help="NAME:VERSION, NAME@ENV or NAME (latest).")],
    to: Annotated[str, typer.Option("--to", help="Environment to move it into.")],
    reason: ReasonOption = "",
    force: Annotated[
        bool, typer.Option("--force", help="Skip the gates (needs --reason; recorded as forced).")
    ] = False,
    if_holds: Annotated[
        int | None,
        typer.Option(
            help="Only if the environment still holds this version (for pipelines).",
            min=1,
            max=MAX_VERSION,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Move a model version into an environment through its gates."""
    out = console()
    with open_client(governed=True) as client, _showing_failed_gates(out, as_json, "promoted"):
        outcome = client.promote(reference, to, reason=reason, force=force, if_holds=if_holds)
    if as_json:
        print_json(outcome)
        return
    print_gates(outcome.gates, out)
    was = f"was {outcome.previous_version}" if outcome.previous_version else "was empty"
    if outcome.request is not None:
        out.print(
            f"request {outcome.request.id} waiting for approval by someone other than "
            f"{outcome.request.requested_by} (modelrail approve {outcome.request.id})"
        )
    else:
        forced = " [bold yellow](forced: gates skipped)[/]" if force else ""
        out.print(
            f"promoted {outcome.model} {outcome.version} to {outcome.environment} ({was}){forced}"
        )


def approve(
    request_id: RequestArgument,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Approve a waiting promotion (someone other than the requester); the gates run again."""
    out = console()
    with open_client(governed=True) as client, _showing_failed_gates(out, as_json, "approved"):
        outcome = client.approve(request_id, reason=reason)
    if as_json:
        print_json(outcome)
        return
    print_gates(outcome.gates, out)
    was = f"was {outcome.previous_version}" if outcome.previous_version else "was empty"
    out.print(
        f"approved request {request_id}: {outcome.model} {outcome.version} is now in "
        f"{outcome.environment} ({was})"
    )


def reject(
    request_id: RequestArgument,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Reject a waiting promotion; nothing moves and the rejection is kept in the history."""
    with open_client(governed=True) as client:
        request = client.reject(request_id, reason=reason)
    if as_json:
        print_json(request)
        return
    console().print(
        f"rejected request {request_id} "
        f"({request.model} {request.version} to {request.environment})"
    )


def rollback(
    model: Annotated[str, typer.Argument(help="Model name.")],
    env: Annotated[str, typer.Option("--env", help="Environment to roll back.")],
    to_version: Annotated[
        int | None,
        typer.Option(help="A version the environment held before.", min=1, max=MAX_VERSION),
    ] = None,
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Put back the version an environment held before (or --to-version N)."""
    # A pickled version the environment's policy refuses is shown as a failed gate.
    with (
        open_client(governed=True) as client,
        _showing_failed_gates(console(), as_json, "rolled_back"),
    ):
        event = client.rollback(model, env, to_version=to_version, reason=reason)
    if as_json:
        print_json(event)
        return
    console().print(
        f"rolled back {model}@{env}: version {event.from_version} -> {event.to_version}"
    )


def history(
    model: Annotated[str | None, typer.Argument(help="Model name (default: all).")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    gates: Annotated[bool, typer.Option("--gates", help="Show each event's gate results.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The append-only history: who moved what, when, from which version to which, and why."""
    with open_client() as client:
        events = client.history(model, env)
    if as_json:
        print_json(events)
        return
    out = console()
    print_history(events, out)
    if gates:
        for event in events:
            if event.gates:
                out.print(f"event {event.id} ({event.action} {event.model}@{event.environment}):")
                print_gates(event.gates, out)


def print_history(events: Sequence[EnvironmentEvent], out: Console) -> None:
    table = Table(title="history", title_justify="left")
    columns = ("#", "when", "model", "env", "action", "from", "to", "who", "why", "gates", "policy")
    for column in columns:
        table.add_column(column)
    for event in events:
        failed = sum(not g.passed for g in event.gates)
        summary = (
            "forced"
            if event.forced
            else (f"{len(event.gates) - failed}/{len(event.gates)} pass" if event.gates else "-")
        )
        action = event.action + (f" #{event.request_id}" if event.request_id else "")
        table.add_row(
            str(event.id),
            format_time(event.created_at),
            event.model,
            event.environment,
            action,
            str(event.from_version or "-"),
            str(event.to_version or "-"),
            event.actor,
            event.reason or "-",
            summary,
            f"v{event.policy_version}" if event.policy_version else "file",
        )
    out.print(table)


def envs(as_json: JsonOption = False) -> None:
    """The board: every model and the version each environment holds."""
    with open_client(governed=True) as client:
        views = client.environments()
        requests = client.approval_requests("pending")
    if as_json:
        print_json(
            {
                "chain": [v.name for v in views],
                "environments": {
                    v.name: {"gates": v.policy.gates, "settings": dict(v.policy.settings)}
                    for v in views
                },
                "holdings": {v.name: {m: h.version for m, h in v.holdings.items()} for v in views},
                "pending_requests": requests,
            }
        )
        return
    models = sorted({m for view in views for m in view.holdings})
    table = Table(title="environments", title_justify="left")
    table.add_column("model")
    for view in views:
        table.add_column(view.name)
    for model in models:
        cells = []
        for view in views:
            holding = view.holdings.get(model)
            cells.append(
                f"{holding.version}  [dim]{format_time(holding.since)}[/]" if holding else "-"
            )
        table.add_row(model, *cells)
    out = console()
    out.print(table)
    for request in requests:
        out.print(
            f"request {request.id}: {request.model} {request.version} -> {request.environment} "
            f"by {request.requested_by}, waiting for approval"
        )


def register(app: typer.Typer) -> None:
    app.command("promote")(promote)
    app.command("approve")(approve)
    app.command("reject")(reject)
    app.command("rollback")(rollback)
    app.command("history")(history)
    app.command("envs")(envs)

"""The second half of the demo: the best version goes dev -> staging -> prod through
gates and a human approval, a weaker one is stopped by a gate, an urgent forced
change is rolled back, and the history shows all of it.
"""

from __future__ import annotations

from rich.console import Console

from modelrail.client import Client
from modelrail.errors import GateFailedError

DEMO_POLICY = """
[environments]
chain = ["dev", "staging", "prod"]
primary_metric = "accuracy"

[environments.staging]
min = { accuracy = 0.9 }
beat_incumbent = true

[environments.prod]
min = { accuracy = 0.93 }
max = { false_positive_rate = 0.05 }
beat_incumbent = true
runtime_compatible = true
approval = true

[environments.prod.monitoring]
drift_alert = 0.2
min_live = { accuracy = 0.95 }
max_live = { false_positive_rate = 0.05 }
"""


def run_promotion_story(alice: Client, bob: Client, model: str, best: int, out: Console) -> None:
    from modelrail.cli.envs import print_gates

    weaker = 6  # the first random forest: 93.9% on the same test data
    out.print("\n[bold]promotion[/]: dev -> staging -> prod, with gates (modelrail.toml)")

    out.print(f"\n$ modelrail promote {model}:1 --to staging")
    outcome = alice.promote(f"{model}:1", "staging", reason="first candidate")
    print_gates(outcome.gates, out)
    out.print(f"promoted {model} 1 to staging")

    out.print(f"\n$ modelrail promote {model}:{weaker} --to staging   # a weaker model")
    try:
        alice.promote(f"{model}:{weaker}", "staging", reason="try the forest")
    except GateFailedError as exc:
        print_gates(exc.results, out)
        out.print(f"[red]refused[/]: {exc.message}")

    out.print(f"\n$ modelrail promote {model}:{best} --to staging")
    outcome = alice.promote(f"{model}:{best}", "staging", reason="best accuracy so far")
    print_gates(outcome.gates, out)
    out.print(f"promoted {model} {best} to staging (was {outcome.previous_version})")

    out.print(f"\n$ modelrail promote {model}:{best} --to prod   # as {alice.user}")
    outcome = alice.promote(f"{model}:{best}", "prod", reason="ready for users")
    print_gates(outcome.gates, out)
    assert outcome.request is not None
    request = outcome.request.id
    out.print(f"request {request} waiting for approval by someone other than {alice.user}")

    out.print(f"\n$ modelrail approve {request} --reason reviewed   # as {bob.user}")
    bob.approve(request, reason="reviewed")
    out.print(f"approved: prod now holds {model} {best}")

    urgent = 10
    out.print(f"\n$ modelrail promote {model}:{urgent} --to prod --force --reason ...")
    alice.promote(f"{model}:{urgent}", "prod", force=True, reason="urgent: new feature asked for")
    out.print(f"promoted {model} {urgent} to prod [yellow](forced: gates skipped, recorded)[/]")

    out.print(f"\n$ modelrail rollback {model} --env prod")
    event = alice.rollback(model, "prod", reason="false positives went up")
    out.print(f"rolled back {model}@prod: version {event.from_version} -> {event.to_version}")
    loaded = alice.load_model(f"{model}@prod")
    out.print(f"modelrail.load_model('{model}@prod') now loads version {loaded.version.version}")

    from modelrail.cli.envs import print_history

    events = alice.history(model)
    automatic = [e for e in events if e.action == "auto"]
    out.print(
        f"\n$ modelrail history {model}   # without the {len(automatic)} automatic entries into dev"
    )
    print_history([e for e in events if e.action != "auto"], out)

"""Racing promotions from real processes: exactly one wins each round, nothing is lost."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from subprocess import Popen
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client

ROUNDS = 12

# A worker promotes on command, at an agreed instant, so all of them hit the store together.
_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from modelrail.client import Client
    from modelrail.config import load_settings
    from modelrail.errors import ModelrailError

    store, project, user = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = load_settings(cwd=Path(project), environ={}, create=False)
    client = Client(store_url=store, settings=settings, user=user)
    for line in sys.stdin:
        order = json.loads(line)
        time.sleep(max(0.0, order["at"] - time.time()))
        try:
            outcome = client.promote(
                order["ref"],
                order.get("to", "staging"),
                reason=order.get("reason", user),
                force=order.get("force", False),
                if_holds=order.get("expect"),
            )
            answer = {
                "won": True,
                "request": outcome.request.id if outcome.request else None,
                "event": outcome.event.id if outcome.event else None,
            }
        except ModelrailError as exc:
            answer = {"won": False, "kind": type(exc).__name__, "error": str(exc)}
        print(json.dumps(answer), flush=True)
    """
)


def _start_workers(store_url: str, project: Path, users: tuple[str, ...]) -> list[Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, store_url, str(project), user],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=project,
        )
        for user in users
    ]


def _race(workers: list[Popen[str]], orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each worker its order, to run at the same instant, and collect the answers."""
    at = time.time() + 0.2
    for worker, order in zip(workers, orders, strict=True):
        assert worker.stdin is not None
        worker.stdin.write(json.dumps({**order, "at": at + order.get("delay", 0.0)}) + "\n")
        worker.stdin.flush()
    answers = []
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line, worker.stderr.read() if worker.stderr else ""
        answers.append(json.loads(line))
    return answers


def _stop(workers: list[Popen[str]]) -> None:
    for worker in workers:
        worker.communicate(timeout=60)  # ends the worker's input and closes the pipes


def test_racing_promotions_one_wins_each_round_and_history_is_complete(
    client: Client, store_url: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    with client.start_run("race") as run:
        first = run.log_model(model, "racer", input_example=X[:3])
    client.promote(f"racer:{first.version}", "staging", reason="start")

    workers = _start_workers(store_url, tmp_path, ("alice", "bob"))
    holder = first.version
    try:
        for _ in range(ROUNDS):
            with client.start_run("race") as run:
                a = run.log_model(model, "racer", input_example=X[:3]).version
                b = run.log_model(model, "racer", input_example=X[:3]).version
            orders = [{"ref": f"racer:{v}", "expect": holder} for v in (a, b)]
            answers = _race(workers, orders)
            winners = [v for v, answer in zip((a, b), answers, strict=True) if answer["won"]]
            assert len(winners) == 1, answers
            (loser,) = [answer for answer in answers if not answer["won"]]
            assert loser["kind"] == "ConflictError", loser
            assert f"version {winners[0]}" in loser["error"]
            holder = winners[0]
            held = client.environment_service.repo.holding("racer", "staging")
            assert held is not None and held.version == holder
    finally:
        _stop(workers)
    promotions = [e for e in client.history("racer", "staging") if e.action == "promote"]
    assert len(promotions) == ROUNDS + 1
    # Each promotion starts from the version the one before it left: no lost update.
    for before, after in itertools.pairwise(promotions):
        assert after.from_version == before.to_version
    assert promotions[-1].to_version == holder


# -- approval requests ------------------------------------------------------------------------

REQUEST_ROUNDS = 25
REQUESTERS = ("alice", "bob", "carol", "dave")


def _racer(client: Client) -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    return LogisticRegression().fit(X, (X["a"] > 0).astype(int)), X


def _in_staging(client: Client, model: LogisticRegression, X: pd.DataFrame) -> int:
    with client.start_run("race") as run:
        version = run.log_model(model, "racer", input_example=X[:3]).version
    client.promote(f"racer:{version}", "staging", reason="ready")
    return version


def _waiting(client: Client, version: int) -> list[int]:
    return [
        r.id
        for r in client.environment_service.requests()
        if (r.model, r.version, r.environment) == ("racer", version, "prod")
    ]


def test_racing_requests_for_one_version_open_exactly_one(
    client: Client, store_url: str, tmp_path: Path
) -> None:
    """Four people promote the same version to prod at the same instant, round after round:
    one request opens, the three others are told which request already waits."""
    model, X = _racer(client)
    workers = _start_workers(store_url, tmp_path, REQUESTERS)
    try:
        for _ in range(REQUEST_ROUNDS):
            version = _in_staging(client, model, X)
            answers = _race(workers, [{"ref": f"racer:{version}", "to": "prod"}] * 4)
            winners = [answer for answer in answers if answer["won"]]
            assert len(winners) == 1, answers
            request = winners[0]["request"]
            assert request is not None and _waiting(client, version) == [request]
            expected = (
                f"request {request} to put racer version {version} in prod is already "
                "waiting for approval"
            )
            for loser in (answer for answer in answers if not answer["won"]):
                assert (loser["kind"], loser["error"]) == ("PromotionError", expected)
    finally:
        _stop(workers)
    events = [e for e in client.history("racer", "prod") if e.action == "request"]
    assert len(events) == REQUEST_ROUNDS
    assert len(client.environment_service.requests()) == REQUEST_ROUNDS


IF_HOLDS_ROUNDS = 20


def test_if_holds_request_opens_only_while_the_environment_holds_that_version(
    client: Client, store_url: str, tmp_path: Path
) -> None:
    """A pipeline asks for prod ``--if-holds H`` while someone forces another version into
    prod: either the request was written while prod still held H, or it is refused."""
    model, X = _racer(client)
    first = _in_staging(client, model, X)
    client.promote(f"racer:{first}", "prod", reason="start", force=True)
    holder = first
    refused = opened = 0
    workers = _start_workers(store_url, tmp_path, ("pipeline", "oncall"))
    try:
        for round_ in range(IF_HOLDS_ROUNDS):
            candidate = _in_staging(client, model, X)
            with client.start_run("race") as run:
                hotfix = run.log_model(model, "racer", input_example=X[:3]).version
            orders = [
                {"ref": f"racer:{candidate}", "to": "prod", "expect": holder},
                # Spread over the pipeline's gates, so the change lands before, during or
                # after its checks.
                {
                    "ref": f"racer:{hotfix}",
                    "to": "prod",
                    "force": True,
                    "reason": "hotfix",
                    "delay": (round_ % 5) * 0.01,
                },
            ]
            asked, forced = _race(workers, orders)
            assert forced["won"], forced
            if asked["won"]:
                opened += 1
                events = {e.id: e for e in client.history("racer", "prod")}
                (request_event,) = [e for e in events.values() if e.request_id == asked["request"]]
                # Written before the hotfix moved in, from the version it expected.
                assert request_event.id < forced["event"], (request_event, forced)
                assert request_event.from_version == holder
            else:
                refused += 1
                assert asked["kind"] == "ConflictError", asked
                assert f"holds version {hotfix}" in asked["error"]
                assert _waiting(client, candidate) == []
            holder = hotfix
    finally:
        _stop(workers)
    assert opened + refused == IF_HOLDS_ROUNDS
    assert refused > 0  # the race was real: some requests lost it


CLI_ROUNDS = 2


def test_racing_cli_promotions_open_one_request_and_the_rest_exit_2(
    client: Client, store_url: str, tmp_path: Path
) -> None:
    from tests.cli.test_cli import MODELRAIL

    model, X = _racer(client)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    for _ in range(CLI_ROUNDS):
        version = _in_staging(client, model, X)
        runs = [
            subprocess.Popen(
                [MODELRAIL, "promote", f"racer:{version}", "--to", "prod"],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**clean, "MODELRAIL_STORE": store_url, "MODELRAIL_USER": user},
            )
            for user in REQUESTERS
        ]
        done = [(run, *run.communicate(timeout=120)) for run in runs]
        (request,) = _waiting(client, version)
        codes = sorted(run.returncode for run, _, _ in done)
        assert codes == [0, 2, 2, 2], done
        for run, out, err in done:
            assert "Traceback" not in err
            if run.returncode == 0:
                assert f"request {request} waiting for approval" in out
            else:
                assert err.strip() == (
                    f"error: request {request} to put racer version {version} in prod is "
                    "already waiting for approval"
                ), err

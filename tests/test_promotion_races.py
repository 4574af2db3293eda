"""Racing promotions from real processes: exactly one wins each round, nothing is lost."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client

ROUNDS = 12

# A worker promotes on command, at an agreed instant, so both hit the store together.
_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from modelrail.client import Client
    from modelrail.config import load_settings
    from modelrail.errors import ConflictError

    store, project, user = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = load_settings(cwd=Path(project), environ={}, create=False)
    client = Client(store_url=store, settings=settings, user=user)
    for line in sys.stdin:
        order = json.loads(line)
        time.sleep(max(0.0, order["at"] - time.time()))
        try:
            client.promote(order["ref"], "staging", reason=user, if_holds=order["expect"])
            print(json.dumps({"won": True}), flush=True)
        except ConflictError as exc:
            print(json.dumps({"won": False, "error": str(exc)}), flush=True)
    """
)


def test_racing_promotions_one_wins_each_round_and_history_is_complete(
    client: Client, store_url: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    with client.start_run("race") as run:
        first = run.log_model(model, "racer", input_example=X[:3])
    client.promote(f"racer:{first.version}", "staging", reason="start")

    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, store_url, str(tmp_path), user],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for user in ("alice", "bob")
    ]
    holder = first.version
    try:
        for _ in range(ROUNDS):
            with client.start_run("race") as run:
                a = run.log_model(model, "racer", input_example=X[:3]).version
                b = run.log_model(model, "racer", input_example=X[:3]).version
            at = time.time() + 0.3
            for worker, version in zip(workers, (a, b), strict=True):
                assert worker.stdin is not None
                order = {"ref": f"racer:{version}", "expect": holder, "at": at}
                worker.stdin.write(json.dumps(order) + "\n")
                worker.stdin.flush()
            answers = []
            for worker in workers:
                assert worker.stdout is not None
                line = worker.stdout.readline()
                assert line, worker.stderr.read() if worker.stderr else ""
                answers.append(json.loads(line))
            winners = [v for v, answer in zip((a, b), answers, strict=True) if answer["won"]]
            assert len(winners) == 1, answers
            (loser,) = [answer for answer in answers if not answer["won"]]
            assert f"version {winners[0]}" in loser["error"]
            holder = winners[0]
            held = client.environment_service.repo.holding("racer", "staging")
            assert held is not None and held.version == holder
    finally:
        for worker in workers:
            worker.communicate(timeout=60)  # ends the worker's input and closes the pipes
    promotions = [e for e in client.history("racer", "staging") if e.action == "promote"]
    assert len(promotions) == ROUNDS + 1
    # Each promotion starts from the version the one before it left: no lost update.
    for before, after in itertools.pairwise(promotions):
        assert after.from_version == before.to_version
    assert promotions[-1].to_version == holder

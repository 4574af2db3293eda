"""`modelrail demo`, the first thing a new user runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODELRAIL = str(Path(sys.executable).with_name("modelrail"))


def test_demo_trains_ten_versions_and_tells_the_story_in_under_a_minute(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    started = time.monotonic()
    done = subprocess.run(
        [MODELRAIL, "demo", "--path", str(tmp_path / "demo")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 60
    assert "model tracker" in done.stdout and "best model: cancer-classifier:" in done.stdout

    tracker = subprocess.run(
        [MODELRAIL, "runs", "--json", "--sort", "version", "--asc"],
        cwd=tmp_path / "demo",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    rows = json.loads(tracker.stdout)["rows"]
    assert [row["version"] for row in rows] == list(range(1, 11))
    trains = [row["labels"]["data:train"] for row in rows]
    assert trains[:3] == ["1.0", "1.1", "1.2"]  # data grows, then is cleaned
    assert trains[-1].startswith("2.")  # a new feature is a new schema
    assert rows[4]["labels"]["data:validation"] == "1.1"  # a new validation split
    assert {row["architecture"] for row in rows} == {"Alpha", "Beta", "Gamma"}
    params = [row["labels"]["params"] for row in rows]
    assert params[:4] == ["1.0", "1.0", "1.0", "1.1"] and params[5] == "2.0"
    assert all("accuracy" in row["metrics"] for row in rows)


def test_demo_promotes_the_best_model_with_approval_stops_a_weaker_one_and_rolls_back(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    done = subprocess.run(
        [MODELRAIL, "demo", "--path", str(tmp_path / "demo")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "beats incumbent on accuracy  FAIL" in done.stdout
    assert "waiting for approval by someone other than alice" in done.stdout
    history = subprocess.run(
        [MODELRAIL, "history", "cancer-classifier", "--env", "prod", "--json"],
        cwd=tmp_path / "demo",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    events = json.loads(history.stdout)
    assert [e["action"] for e in events] == ["request", "approve", "promote", "rollback"]
    request, approval, forced, rollback = events
    assert request["actor"] == "alice" and approval["actor"] == "bob"
    assert forced["forced"] and forced["gates"] == []
    assert rollback["from_version"] == forced["to_version"]
    assert rollback["to_version"] == approval["to_version"]

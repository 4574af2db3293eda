"""``modelrail batch schedule / schedules / unschedule`` and ``modelrail scheduler`` as a user
runs them: messages, JSON, exit codes, and a scheduler that stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from modelrail.batch.schedules import create_schedule
from modelrail.batch.spec import JobSpec
from modelrail.cli import main
from modelrail.cli.batch_schedule import register
from modelrail.client import Client

Invoke = Callable[..., tuple[int, str, str]]
ROOT = Path(__file__).resolve().parents[2]
NIGHTLY = (
    "batch", "schedule", "nightly-scores", "pets-classifier@prod", "--cron", "0 2 * * *",
    "--input", "data/*.parquet", "--output", "sqlite:///scores.db", "--table", "scores",
    "--id-column", "id",
)  # fmt: skip


def app() -> typer.Typer:
    root = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode=None)
    batch = typer.Typer(help="Batch scoring.")
    root.add_typer(batch, name="batch")
    register(batch, root)
    return root


@pytest.fixture
def modelrail(
    client: Client,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Invoke:
    """Run a command through ``main.run`` (the one place errors become exit codes)."""
    monkeypatch.chdir(tmp_path)
    for key in ("MODELRAIL_HOME", "MODELRAIL_ARTIFACTS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MODELRAIL_STORE", store_url)
    monkeypatch.setenv("MODELRAIL_USER", "alice")
    monkeypatch.setattr(main, "app", app())

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["modelrail", *args])
        with pytest.raises(SystemExit) as exited:
            main.run()
        captured = capsys.readouterr()
        return int(exited.value.code or 0), captured.out, captured.err

    return invoke


def test_schedule_a_cron_job_and_list_it(modelrail: Invoke, tmp_path: Path) -> None:
    code, out, err = modelrail(*NIGHTLY, "--timezone", "Europe/Berlin")
    assert code == 0, err
    assert "scheduled nightly-scores: pets-classifier@prod at '0 2 * * *'" in out
    assert "(Europe/Berlin, catch-up once); next run" in out and "CE" in out
    code, out, _ = modelrail("batch", "schedules", "--json")
    [listed] = json.loads(out)
    assert listed["name"] == "nightly-scores" and listed["kind"] == "cron"
    assert listed["timezone"] == "Europe/Berlin" and listed["created_by"] == "alice"
    assert listed["spec"]["inputs"] == [str(tmp_path / "data" / "*.parquet")]
    assert listed["next_run_at"] > time.time() and listed["last_run"] is None
    code, out, _ = modelrail("batch", "schedules")
    assert code == 0 and "nightly-scores" in out and "0 2 * * *" in out and "Europe/Berlin" in out


def test_schedule_a_file_trigger(modelrail: Invoke, tmp_path: Path) -> None:
    code, out, err = modelrail(
        "batch", "schedule", "new-files", "pets-classifier@prod",
        "--when-new-files", "incoming/*.parquet", "--output", "scores", "--id-column", "id",
    )  # fmt: skip
    assert code == 0, err
    assert f"for each new file matching {tmp_path / 'incoming' / '*.parquet'}" in out
    _, out, _ = modelrail("batch", "schedules")
    assert "new-files" in out and "files" in out and "on arrival" in out


BAD_SCHEDULES = [
    (("--cron", "61 * * * *"), "invalid cron expression '61 * * * *'"),
    (("--cron", "0 2 * * *", "--timezone", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
    (("--cron", "0 2 * * *", "--catch-up", "twice"), "--catch-up must be 'once', 'all' or"),
    (("--when-new-files", "in/*.csv", "--input", "x.csv"), "leave out --input"),
    (("--when-new-files", "in/*.csv", "--catch-up", "skip"), "--catch-up applies to --cron"),
    ((), "either --cron (an expression) or --when-new-files (a glob)"),
]


def test_bad_schedules_exit_2_with_a_readable_message(modelrail: Invoke) -> None:
    for extra, message in BAD_SCHEDULES:
        args = ("batch", "schedule", "job", "pets@prod", "--output", "o", "--id-column", "id")
        if "--when-new-files" not in extra:
            args += ("--input", "x.csv")
        code, _, err = modelrail(*args, *extra)
        assert code == 2, (extra, err)
        assert message in " ".join(err.split()) and "Traceback" not in err
    _, out, _ = modelrail("batch", "schedules", "--json")
    assert json.loads(out) == []


def test_a_taken_name_exits_2_until_replace(modelrail: Invoke) -> None:
    assert modelrail(*NIGHTLY)[0] == 0
    code, _, err = modelrail(*NIGHTLY)
    assert code == 2 and "exists already" in err and "--replace" in err
    code, _, err = modelrail(*NIGHTLY[:4], "--cron", "0 3 * * *", *NIGHTLY[6:], "--replace")
    assert code == 0, err
    _, out, _ = modelrail("batch", "schedules", "--json")
    assert [s["cron"] for s in json.loads(out)] == ["0 3 * * *"]


def test_unschedule(modelrail: Invoke) -> None:
    code, _, err = modelrail("batch", "unschedule", "nightly-scores")
    assert code == 4 and "no batch schedule named 'nightly-scores'" in err
    assert modelrail(*NIGHTLY)[0] == 0
    code, out, _ = modelrail("batch", "unschedule", "nightly-scores")
    assert code == 0 and "removed schedule nightly-scores" in out
    assert json.loads(modelrail("batch", "schedules", "--json")[1]) == []


def test_scheduler_once_with_nothing_due(modelrail: Invoke) -> None:
    assert modelrail(*NIGHTLY)[0] == 0
    code, out, _ = modelrail("scheduler", "--once")
    assert code == 0 and "0 job(s) ran" in out


def test_scheduler_once_runs_a_due_job_and_exits_1_when_it_fails(
    modelrail: Invoke, client: Client
) -> None:
    spec = JobSpec(reference="ghost@prod", output="o", id_columns=("id",), inputs=("x.parquet",))
    create_schedule(client, "ghostly", spec, cron="* * * * *", now=time.time() - 3600)
    code, out, err = modelrail("scheduler", "--once")
    assert code == 1 and "1 job(s) ran: 0 succeeded, 1 failed" in out
    assert "ghostly: started" in err and "ghostly: failed" in err and "ghost" in err
    _, out, _ = modelrail("batch", "schedules", "--json")
    assert json.loads(out)[0]["next_run_at"] > time.time()


_SERVICE = """
import sys

import typer

from modelrail.cli import main
from modelrail.cli.batch_schedule import register

root = typer.Typer(pretty_exceptions_enable=False)
batch = typer.Typer()
root.add_typer(batch, name="batch")
register(batch, root)
main.app = root
sys.argv = ["modelrail", *sys.argv[1:]]
main.run()
"""


def test_scheduler_stops_cleanly_on_sigterm(client: Client, store_url: str, tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(_SERVICE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELRAIL_")}
    env.update(MODELRAIL_STORE=store_url, PYTHONPATH=str(ROOT / "src"))
    process = subprocess.Popen(
        [sys.executable, str(script), "scheduler", "--poll", "0.2"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    seen = ""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while "started" not in seen and time.monotonic() < deadline:
            if selector.select(timeout=0.5):
                seen += process.stderr.readline()
    assert "started, polling every 0.2 s" in seen, seen
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 0, seen + err
    assert "SIGTERM received" in err and "stopped" in err

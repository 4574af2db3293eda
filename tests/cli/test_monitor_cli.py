"""``modelrail feedback load`` and ``modelrail monitor`` as a user runs them: summaries,
the table, JSON for scripts, exit 16 on an alert, and bad input as one line and exit 2."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrail.client import Client
from tests.batch.conftest import CliOutcome, modelrail_cli
from tests.monitoring.conftest import DAY, NOW, Registered, frame, log_traffic
from tests.monitoring.conftest import registered as registered  # the module's project

RANGE = ("--since", "2027-01-13", "--until", "2027-01-15T08:00:00+00:00")


class Project:
    def __init__(self, registered: Registered, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = registered.root
        self.registered = registered
        self.monkeypatch = monkeypatch
        self.client = Client(settings=registered.settings, user="tester")

    def __call__(self, *args: str) -> CliOutcome:
        return modelrail_cli(self.monkeypatch, self.root, *args)


@pytest.fixture
def project(registered: Registered, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    made = Project(registered, monkeypatch)
    shutil.rmtree(made.client.monitoring_root, ignore_errors=True)  # each test logs its own
    yield made
    made.client.close()


def _one_line_error(outcome: CliOutcome, code: int, text: str) -> None:
    assert outcome.code == code, outcome
    assert outcome.stderr.startswith("error: ") and text in outcome.stderr, outcome.stderr
    assert "Traceback" not in outcome.stderr and outcome.stdout == ""


def test_labels_loaded_then_an_alert_shown_and_exit_16(project: Project, tmp_path: Path) -> None:
    churn = project.registered.churn
    ids = log_traffic(project.client, churn, frame(600, 70, shift=9.0), at=NOW - DAY)
    labels = tmp_path / "outcomes.csv"
    labels.write_text("id,churned\n" + "".join(f"{i},yes\n" for i in ids[:50]), encoding="utf-8")
    loaded = project("feedback", "load", str(labels), "--model", "churn", "--id-column", "id",
                     "--label", "churned")  # fmt: skip
    assert loaded.code == 0, loaded
    assert loaded.stdout.strip() == f"loaded 50 labels for churn from {labels}"
    again = project("feedback", "load", str(labels), "--model", "churn", "--id-column", "id",
                    "--label", "churned", "--json")  # fmt: skip
    assert json.loads(again.stdout)["replaced"] == 50

    shown = project("monitor", "churn@dev", *RANGE)
    assert shown.code == 16, shown
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("churn@dev (reference: version 1, train 1.0): 600 requests")
    tenure = next(line for line in lines if line.startswith("tenure"))
    assert "ALERT (>= 0.2)" in tenure and "mean 39" in tenure
    assert any(line.startswith("live accuracy") and "(50 labelled)" in line for line in lines)
    assert lines[-2].startswith("ALERT tenure: drift (PSI)")

    as_json = project("monitor", "churn@dev", *RANGE, "--json", "--window", "1d")
    assert as_json.code == 16
    report = json.loads(as_json.stdout)
    assert set(report) == {
        "format", "model", "environment", "version", "reference_label", "since", "until",
        "checked_at", "status", "drift_watch", "drift_alert", "alerts", "overall", "windows",
        "by_version",
    }  # fmt: skip
    # From midnight of 2027-01-13 to NOW, 08:00 on the 15th; windows of whole days.
    start = NOW - 2 * DAY - 8 * 3600
    assert (report["status"], report["since"], report["until"]) == ("alert", start, NOW)
    assert [w["rows"] for w in report["windows"]] == [0, 600, 0]
    feature = report["overall"]["features"][0]
    assert set(feature) == {
        "feature", "kind", "reference", "current", "rows", "missing_rate", "psi", "statistic",
        "statistic_value", "p_value", "status", "threshold",
    }  # fmt: skip


def test_usual_traffic_exits_0_and_nothing_logged_says_so(project: Project) -> None:
    nothing = project("monitor", "churn@dev", *RANGE)
    assert nothing.code == 0, nothing
    assert "no predictions were logged" in nothing.stdout
    log_traffic(project.client, project.registered.churn, frame(600, 71), at=NOW - DAY)
    usual = project("monitor", "churn@dev", *RANGE)
    assert usual.code == 0, usual
    assert "ALERT" not in usual.stdout


def test_notify_keeps_the_check_as_the_latest(project: Project) -> None:
    log_traffic(project.client, project.registered.churn, frame(100, 72), at=NOW - DAY)
    outcome = project("monitor", "churn@dev", *RANGE, "--notify", "--json")
    assert outcome.code == 0, outcome
    checks = project.client.monitoring_checks(["churn"])
    assert [(c.model, c.environment, c.until) for c in checks] == [("churn", "dev", NOW)]


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("monitor", "churn@dev", "--since", "yesterday"), 2, "--since must be a duration"),
        (("monitor", "churn@dev", "--window", "0d"), 2, "--window must be a duration"),
        (
            ("monitor", "churn@dev", "--since", "2027-01-15", "--until", "2027-01-13"),
            2,
            "--since must be before --until",
        ),
        (("monitor", "nobody@dev"), 4, "nobody"),
        (("monitor", "churn@nowhere"), 4, "unknown environment 'nowhere'"),
        (("monitor", "churn:1", "--notify"), 2, "checks are kept per environment"),
        (
            (
                "feedback",
                "load",
                "LABELS",
                "--model",
                "churn",
                "--id-column",
                "id",
                "--label",
                "nope",
            ),
            2,
            "input column 'nope' is missing from",
        ),
        (
            (
                "feedback",
                "load",
                "LABELS",
                "--model",
                "nobody",
                "--id-column",
                "id",
                "--label",
                "y",
            ),
            2,
            "cannot load labels for model 'nobody'",
        ),
        (
            ("feedback", "load", "--model", "churn", "--id-column", "id", "--label", "y"),
            2,
            "no labels to load: give a file (or folder) or a query",
        ),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    project: Project, tmp_path: Path, args: tuple[str, ...], code: int, text: str
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("id,y\na,yes\n", encoding="utf-8")
    outcome = project(*(str(labels) if a == "LABELS" else a for a in args))
    _one_line_error(outcome, code, text)
    assert not (Path(project.client.monitoring_root) / "feedback").exists()

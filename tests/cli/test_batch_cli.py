"""``modelrail batch`` as a user runs it: the summary line, JSON for scripts, the history and
one run in full, progress lines on stderr when not on a terminal, and bad inputs that end with
one line on stderr and the documented exit code, never a traceback.

The commands run in this process through the console script's entry point (which is where
errors become exit codes), with Click's test runner capturing stdout and stderr.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrail.batch.spec import JobSpec
from modelrail.errors import BatchInputError
from modelrail.store.batch_runs_repo import BatchRunRepository
from tests.batch.conftest import (
    BINARY,
    ROWS,
    CliOutcome,
    Models,
    ScoringProject,
    fit_models,
    modelrail_cli,
    open_project,
)

SUMMARY = re.compile(
    r"^batch run (?P<id>[0-9a-f]{12}) succeeded: churn 1 \(churn:1\) scored 300 rows, wrote 300 "
    r"to sqlite:///(?P<db>\S+) table scores in [0-9.]+ m?s \([0-9,]+ rows/s\)$"
)


@pytest.fixture(scope="module")
def fitted() -> Models:
    return fit_models()


@pytest.fixture
def project(tmp_path: Path, fitted: Models) -> Iterator[ScoringProject]:
    made = open_project(tmp_path, fitted)
    made.parquet()
    bad = made.frame.copy()
    bad.loc[42, "f1"] = float("nan")
    made.parquet("bad.parquet", bad)
    yield made
    made.client.close()


@pytest.fixture
def batch(project: ScoringProject, monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchCommand]:
    yield BatchCommand(project.root, monkeypatch)


class BatchCommand:
    """``modelrail batch ...`` in the project."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str) -> CliOutcome:
        return modelrail_cli(self.monkeypatch, self.root, "batch", *args)

    def run(self, *extra: str, data: str = "data/input.parquet") -> CliOutcome:
        return self(
            "run",
            f"{BINARY}:1",
            "--input",
            data,
            "--output",
            "sqlite:///scores.db",
            "--table",
            "scores",
            "--id-column",
            "id",
            *extra,
        )


def one_error_line(done: CliOutcome) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr
    assert done.stdout == ""
    return lines[0]


def test_run_ends_with_a_summary_line(batch: BatchCommand, project: ScoringProject) -> None:
    done = batch.run()
    assert done.code == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    found = SUMMARY.match(lines[0])
    assert found, lines[0]
    assert Path(found["db"]) == project.root / "scores.db"
    (record,) = BatchRunRepository(project.client.db).recent()
    assert record.id.startswith(found["id"]) and record.rows_written == ROWS


def test_run_json_prints_the_run_record(batch: BatchCommand) -> None:
    done = batch.run("--json", "--on-bad-rows", "skip", data="data/bad.parquet")
    assert done.code == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "succeeded" and record["error"] is None
    assert (record["model"], record["version"], record["reference"]) == (BINARY, 1, "churn:1")
    assert (record["rows_read"], record["rows_written"], record["rows_rejected"]) == (
        ROWS,
        ROWS - 1,
        1,
    )
    assert re.fullmatch(r"[0-9a-f]{64}", record["input_fingerprint"])
    assert record["output"].endswith("scores.db table scores")
    assert done.stderr == ""  # no progress either


def test_history_lists_runs_newest_first(batch: BatchCommand) -> None:
    empty = batch("history")
    assert empty.code == 0 and "no batch runs yet" in empty.stdout
    assert json.loads(batch("history", "--json").stdout) == []
    good = json.loads(batch.run("--json").stdout)
    assert batch.run(data="data/bad.parquet").code == 2
    table = batch("history")
    assert table.code == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(line for line in lines if "status" in line)
    for column in ("run", "started", "model", "version", "input", "rows", "status", "took", "why"):
        assert column in header
    failed_line, good_line = (line for line in lines if BINARY in line)
    assert "failed" in failed_line and "input row 42 " in failed_line  # why it failed
    assert good["id"][:12] in good_line and "succeeded" in good_line
    assert good["input_fingerprint"][:12] in good_line and "300" in good_line
    runs = json.loads(batch("history", "--json").stdout)
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    assert runs[1]["id"] == good["id"]
    only = json.loads(batch("history", "--json", "--status", "succeeded").stdout)
    assert [r["id"] for r in only] == [good["id"]]
    assert json.loads(batch("history", "--json", "--model", "other").stdout) == []


def test_show_prints_one_run_with_the_error_of_a_failed_one(
    batch: BatchCommand, project: ScoringProject
) -> None:
    failed = batch.run(data="data/bad.parquet")
    assert failed.code == 2
    (record,) = BatchRunRepository(project.client.db).recent()
    shown = batch("show", record.id[:6])
    assert shown.code == 0, shown.stderr
    assert f"batch run {record.id}" in shown.stdout
    assert re.search(r"status\s+failed", shown.stdout)
    assert re.search(r"model\s+churn 1 \(asked for churn:1\)", shown.stdout)
    error = re.search(r"error\s+(.*)", shown.stdout)
    assert error and "input row 42 " in error[1] and "column 'f1'" in error[1]
    as_json = json.loads(batch("show", record.id, "--json").stdout)
    assert as_json["status"] == "failed" and as_json["error"] == record.error
    assert "input row 42 " in failed.stderr


RUN = ("run", "churn:1", "-i", "data/input.parquet")
BAD_INPUTS = {
    "missing input file": (
        ("run", "churn:1", "-i", "data/nope.parquet", "-o", "scores", "--id-column", "id"),
        2,
        "data/nope.parquet' (folders are searched",
    ),
    "missing id column": (
        ("run", "churn:1", "-i", "data/input.parquet", "-o", "scores", "--id-column", "nope"),
        2,
        "input column 'nope' is missing from data/input.parquet",
    ),
    "bad row": (
        ("run", "churn:1", "-i", "data/bad.parquet", "-o", "scores", "--id-column", "id"),
        2,
        "input row 42 ({\"id\":1042}): column 'f1' is empty or not a finite number; nothing was",
    ),
    "unreachable PostgreSQL": (
        (
            *RUN,
            "-o",
            "postgresql://postgres@127.0.0.1:1/x",
            "--table",
            "scores",
            "--id-column",
            "id",
        ),
        10,
        "cannot read table scores in postgresql://postgres@127.0.0.1:1/x: connection failed",
    ),
    "SQLite output in a missing folder": (
        (*RUN, "-o", "sqlite:///nowhere/scores.db", "--table", "scores", "--id-column", "id"),
        10,
        "nowhere is missing",
    ),
    "unreachable Redis": (
        (*RUN, "-o", "redis://127.0.0.1:1/0", "--table", "scores", "--id-column", "id"),
        10,
        "cannot reach redis://127.0.0.1:1/0",
    ),
    "unknown model": (
        ("run", "nosuch:1", "-i", "data/input.parquet", "-o", "scores", "--id-column", "id"),
        4,
        "nosuch",
    ),
    "unknown run id to show": (("show", "ffff0000"), 4, "no batch run 'ffff0000'"),
    "unknown run id to resume": (("resume", "ffff0000"), 4, "no batch run 'ffff0000'"),
    "bad --on-bad-rows": (
        (*RUN, "-o", "scores", "--id-column", "id", "--on-bad-rows", "ignore"),
        2,
        "--on-bad-rows must be 'fail' or 'skip', not 'ignore'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_its_exit_code(batch: BatchCommand, case: str) -> None:
    args, code, message = BAD_INPUTS[case]
    done = batch(*args)
    assert done.code == code, done.stderr
    assert message in one_error_line(done)


def test_resume_of_a_succeeded_run_is_refused(batch: BatchCommand) -> None:
    run_id = json.loads(batch.run("--json").stdout)["id"]
    done = batch("resume", run_id[:8])
    assert done.code == 2
    assert f"batch run {run_id[:12]} has already succeeded" in one_error_line(done)


def test_progress_is_a_plain_line_on_stderr_when_not_on_a_terminal(
    batch: BatchCommand, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelrail.cli.batch._LOG_EVERY_SECONDS", 0.0)
    done = batch.run("--batch-rows", "100")
    assert done.code == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    for line, rows in zip(lines, (100, 200, 300), strict=True):
        assert re.fullmatch(rf"scoring churn:1: {rows} of 300 rows, [0-9,]+ rows/s", line), line
    assert "\x1b[" not in done.stderr  # no bar, no colours
    assert SUMMARY.match(done.stdout.strip())


def test_env_sends_the_output_where_the_environment_says(
    batch: BatchCommand, project: ScoringProject
) -> None:
    toml = project.root / "modelrail.toml"
    toml.write_text(
        toml.read_text()
        + '\n[environments.staging.settings]\nbatch_output = "sqlite:///staging.db"\n'
        + 'batch_table = "staged"\n'
    )
    done = batch(
        "run", "churn:1", "-i", "data/input.parquet", "--id-column", "id", "--env", "staging"
    )
    assert done.code == 0, done.stderr
    assert f"to sqlite:///{project.root / 'staging.db'} table staged in" in done.stdout


def test_a_library_error_names_parameters_and_the_command_line_names_its_flags(
    batch: BatchCommand,
) -> None:
    with pytest.raises(BatchInputError) as caught:
        JobSpec(reference=f"{BINARY}:1", output="scores", id_columns=("id", "id"), inputs=("x",))
    assert str(caught.value) == "id_columns repeats a column: id, id"
    assert caught.value.param == "id_columns"
    done = batch.run("--id-column", "id")
    assert done.code == 2
    assert one_error_line(done) == "error: --id-column repeats a column: id, id"

"""Numbers beyond what a store can hold, typed on the command line, are usage errors naming
the value (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import cli

HUGE = "9" * 30


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert cli(tmp_path, "init").returncode == 0
    return tmp_path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("runs", "--limit", HUGE), "--limit"),
        (("runs", "--offset", HUGE), "--offset"),
        (("promote", f"churn:{HUGE}", "--to", "staging"), f"invalid version '{HUGE}'"),
        (("promote", "churn:2147483648", "--to", "staging"), "from 1 to 2147483647"),
        (("promote", "churn:\u00b2", "--to", "staging"), "invalid version"),
        (("runs", "--limit", "-1"), "--limit"),
        (("batch", "history", "--limit", HUGE), "--limit"),
        (("approve", HUGE), "request_id"),
        (("reject", "2147483648"), "request_id"),
        (("promote", "churn:1", "--to", "prod", "--if-holds", HUGE), "--if-holds"),
        (("rollback", "churn", "--env", "prod", "--to-version", HUGE), "--to-version"),
    ],
    ids=[
        "limit",
        "offset",
        "version",
        "version past 32 bits",
        "unicode digit",
        "negative",
        "batch history",
        "approve",
        "reject",
        "if-holds",
        "rollback to",
    ],
)
def test_an_out_of_range_number_is_a_usage_error_naming_it(
    project: Path, args: tuple[str, ...], named: str
) -> None:
    done = cli(project, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert named in done.stderr

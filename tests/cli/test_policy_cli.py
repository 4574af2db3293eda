"""``modelrail policy`` in a local project: apply a team file, see it govern, and be told when
the project's own modelrail.toml says something else."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import cli
from tests.cli.test_envs_cli import POLICY, as_user, project

__all__ = ["project"]

LOOSER = POLICY.replace("approval = true", "approval = false")
NOTE = "the store's shared policy version 1 is in force"


def test_a_stored_policy_governs_and_a_differing_file_is_pointed_out(project: Path) -> None:
    (project / "team.toml").write_text(POLICY)
    done = cli(project, "policy", "apply", "team.toml", "--reason", "one policy")
    assert (done.returncode, done.stdout) == (0, "applied team.toml as policy version 1\n")
    assert NOTE not in cli(project, "envs").stderr  # the file says the same

    (project / "modelrail.toml").write_text(LOOSER)
    done = cli(project, "promote", "pets-classifier:1", "--to", "staging", "-r", "x")
    assert done.returncode == 0 and NOTE in done.stderr
    assert "modelrail policy diff modelrail.toml" in done.stderr
    done = cli(project, "promote", "pets-classifier:1", "--to", "prod", "-r", "x")
    # The file's approval = false does not count: the stored policy asks for an approval.
    assert done.returncode == 0 and "waiting for approval" in done.stdout, done.stdout
    diff = cli(project, "policy", "diff", "modelrail.toml")
    assert "-approval = true" in diff.stdout and "+approval = false" in diff.stdout

    history = json.loads(cli(project, "history", "--json").stdout)
    assert [e["policy_version"] for e in history][-2:] == [1, 1]
    table = cli(project, "history", "pets-classifier", "--env", "prod").stdout
    assert "policy" in table and "v1" in table


def test_bad_files_and_a_missing_policy_are_clear_errors(project: Path) -> None:
    done = cli(project, "policy", "show", "--version", "3")
    assert done.returncode == 4 and "holds no policy version 3" in done.stderr
    done = cli(project, "policy", "history")
    assert done.returncode == 4 and "modelrail policy apply FILE" in done.stderr
    (project / "bad.toml").write_text('[environments.prod.permissions]\nrequest = "member"\n')
    done = cli(project, "policy", "apply", "bad.toml")
    assert done.returncode == 2 and "bad.toml:2: " in done.stderr and "Traceback" not in done.stderr
    done = cli(project, "policy", "apply", "nowhere.toml")
    assert done.returncode == 2 and "nowhere.toml: no such file" in done.stderr


def test_once_users_exist_a_member_cannot_apply(project: Path) -> None:
    assert cli(project, "users", "add", "ada", "--role", "admin").returncode == 0
    assert cli(project, "users", "add", "bob", "--role", "member").returncode == 0
    (project / "team.toml").write_text(LOOSER)
    done = cli(project, "policy", "apply", "team.toml", env=as_user("bob"))
    assert done.returncode == 12 and "bob may not administer users and policy" in done.stderr
    done = cli(project, "policy", "apply", "team.toml", env=as_user("ada"))
    assert done.returncode == 0, done.stderr
    shown = json.loads(cli(project, "policy", "show", "--json").stdout)
    assert shown["author"] == "ada" and "approval = false" in shown["document"]

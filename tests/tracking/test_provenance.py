"""The git state, entry point and environment a run records."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from modelrail.tracking.provenance import capture_environment, capture_git


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "train.py").write_text("print('v1')\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "commit", "-q", "-m", "first")
    _git(tmp_path, "remote", "add", "origin", "https://alice:s3cret@git.example.org/team/pets.git")
    capture_git.cache_clear()
    return tmp_path


def test_clean_tree_records_commit_branch_and_remote_without_credentials(repo: Path) -> None:
    state = capture_git(str(repo))
    assert state is not None
    assert state.commit is not None and len(state.commit) == 40
    assert state.branch == "main"
    assert state.remote == "https://git.example.org/team/pets.git"
    assert not state.dirty and state.diff_sha256 is None


def test_uncommitted_change_is_fingerprinted(repo: Path) -> None:
    (repo / "train.py").write_text("print('v2')\n")
    first = capture_git(str(repo))
    capture_git.cache_clear()
    (repo / "train.py").write_text("print('v3')\n")
    second = capture_git(str(repo))
    assert first is not None and second is not None
    assert first.dirty and second.dirty
    assert first.diff_sha256 and second.diff_sha256
    assert first.diff_sha256 != second.diff_sha256


def test_outside_git_there_is_no_git_state(tmp_path: Path) -> None:
    capture_git.cache_clear()
    assert capture_git(str(tmp_path)) is None


def test_environment_lists_exact_installed_package_versions() -> None:
    env = capture_environment()
    assert env.packages["scikit-learn"] == metadata.version("scikit-learn")
    assert env.packages["sqlalchemy"] == metadata.version("sqlalchemy")
    assert env.python_version.count(".") == 2


def test_a_script_run_records_its_commit_entry_point_and_arguments(repo: Path) -> None:
    import sys

    from modelrail.client import Client
    from modelrail.config import init_project, load_settings

    (repo / "train.py").write_text(
        "import sys, modelrail\n"
        "with modelrail.start_run(experiment='pets', architecture='Alpha') as run:\n"
        "    run.log_params({'lr': float(sys.argv[1])})\n"
        "print(run.id)\n"
    )
    _git(repo, "commit", "-q", "-am", "script")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    init_project(repo)
    done = subprocess.run(
        [sys.executable, "train.py", "0.5", "--fast"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    run_id = done.stdout.strip().splitlines()[-1]
    with Client(settings=load_settings(cwd=repo, environ={}, create=False)) as client:
        run = client.get_run(run_id)
    git = run.provenance["git"]
    assert git["commit"] == head
    assert git["dirty"] is False  # .modelrail/ ignores itself; modelrail.toml is untracked
    entry = run.provenance["entry_point"]
    assert entry["script"] == str(repo / "train.py")
    assert entry["arguments"] == ["0.5", "--fast"]
    assert run.components["code"].details["commit"] == head
    assert run.provenance["environment"]["python_version"] == sys.version.split()[0]

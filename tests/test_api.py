"""The top-level API a notebook user touches first."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import modelrail


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELRAIL_STORE", "MODELRAIL_ARTIFACTS", "MODELRAIL_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_using_the_api_without_init_creates_a_project_here_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="modelrail"), modelrail.start_run("pets") as run:
        run.log_metric("accuracy", 0.5)
    assert (tmp_path / ".modelrail" / "modelrail.db").is_file()
    assert any("created" in message and str(tmp_path) in message for message in caplog.messages)


def test_start_run_in_a_subfolder_uses_the_project_above(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    modelrail_dir = tmp_path / ".modelrail"
    from modelrail.config import init_project

    init_project(tmp_path)
    sub = tmp_path / "notebooks"
    sub.mkdir()
    monkeypatch.chdir(sub)
    with modelrail.start_run("pets") as run:
        pass
    assert not (sub / ".modelrail").exists()
    assert modelrail.Client(settings=None).get_run(run.id).status == "finished"
    assert modelrail_dir.is_dir()


def test_import_does_not_load_the_database_layer() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import modelrail, sys; print('sqlalchemy' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "False"

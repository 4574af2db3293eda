"""A run from a dirty tree logged through the team server uploads its code snapshot there."""

from __future__ import annotations

import os
from pathlib import Path

from modelrail.tracking.snapshot import DIFF_ARTIFACT, UNTRACKED_ARTIFACT
from tests.server.conftest import HOST, Team
from tests.tracking.test_code_snapshot import dirty_repo, git, train


def test_a_dirty_run_through_the_team_server_uploads_its_snapshot(
    team: Team, tmp_path: Path
) -> None:
    repo = dirty_repo(tmp_path / "work")
    env = {
        **os.environ,
        "MODELRAIL_SERVER": f"http://{HOST}:{team.port}",
        "MODELRAIL_TOKEN": team.tokens["mia"],
    }
    (repo / ".modelrail").rename(repo.parent / "elsewhere")  # no local project: only the server
    run_id = train(repo, env)
    run = team.client.get_run(run_id)
    assert run.user == "mia"
    assert {a.path for a in run.artifacts} == {DIFF_ARTIFACT, UNTRACKED_ARTIFACT}
    assert team.client.run_artifact(run_id, DIFF_ARTIFACT) == git(repo, "diff", "HEAD", "--binary")
    assert [f["path"] for f in run.provenance["code_snapshot"]["untracked"]] == ["helper.py"]

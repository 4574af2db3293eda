"""``reproduce`` signed in to a team server: a dirty run logged through the server is rebuilt
from what the server keeps (its diff and untracked files uploaded there), rerun recording
into the server as the same user, and compared with the version the server holds."""

from __future__ import annotations

from pathlib import Path

from modelrail.config import load_settings
from modelrail.portability.reproduce_compare import SAME
from modelrail.portability.reproduce_plan import REPRODUCTION_TAG
from modelrail.remote.client import RemoteClient
from tests.portability.reproduce_project import make_project, train, worktrees
from tests.server.conftest import HOST, Team


def test_a_version_on_the_server_is_reproduced_through_it(team: Team, tmp_path: Path) -> None:
    root = make_project(tmp_path / "work" / "churn")
    (root / ".modelrail").rename(tmp_path / "not-here")  # only the server keeps records
    url = f"http://{HOST}:{team.port}"
    run_id = train(
        root, "0.5", env={"MODELRAIL_SERVER": url, "MODELRAIL_TOKEN": team.tokens["mia"]}
    )
    settings = load_settings(cwd=root, environ={}, create=False)
    with RemoteClient(url, team.tokens["mia"], settings=settings) as client:
        report = client.reproduce("churn:1", reuse_env=True, repository=str(root))
    assert report.reproduced, [row for row in report.rows if row.result != SAME]
    assert {row.component: row.result for row in report.rows}["predictions"] == SAME
    rebuilt = team.client.get_run(report.rebuilt_run)
    assert rebuilt.user == "mia" and rebuilt.tags[REPRODUCTION_TAG] == run_id
    assert [(m.model, m.version) for m in rebuilt.model_versions] == [("churn", 2)]
    assert not (root / ".modelrail").exists()  # nothing was recorded locally
    assert worktrees(root) == [str(root)]

"""``reproduce``: a version rebuilt from its record in a scratch git worktree (with its
uncommitted diff and untracked files), its data checked, its script rerun as a linked run in
the current environment (``reuse_env``), and compared; every step that cannot be done says
why and leaves nothing behind."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from modelrail.client import Client
from modelrail.errors import InvalidInputError, ModelNotFoundError, ReproduceError
from modelrail.portability.reproduce_compare import (
    DIFFERS,
    SAME,
    SKIPPED,
    compare_components,
    compare_metrics,
)
from modelrail.portability.reproduce_plan import REPRODUCTION_TAG
from tests.portability.reproduce_project import (
    churn_data,
    git,
    make_project,
    open_client,
    train,
    worktrees,
)


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A project with one dirty run that registered churn:1."""
    root = make_project(tmp_path_factory.mktemp("reproduce") / "churn")
    return root, train(root, "0.5")


def test_a_dirty_run_is_rebuilt_rerun_and_found_the_same(churn: tuple[Path, str]) -> None:
    root, run_id = churn
    with open_client(root) as client:
        report = client.reproduce("churn:1", reuse_env=True, repository=str(root), keep=True)
        rebuilt = client.get_run(report.rebuilt_run)
        original = client.get_run(run_id)
    rows = {row.component: row for row in report.rows}
    assert report.reproduced, [r for r in report.rows if r.result != SAME]
    assert report.original_run == run_id and report.rebuilt_run != run_id
    assert [rows[c].result for c in ("code", "environment", "data:train", "data:test")] == [
        SAME
    ] * 4
    assert rows["params"].result == SAME and rows["metric accuracy"].result == SAME
    assert rows["code"].recorded.endswith("(+ diff) (+ 1 untracked)")
    assert rows["predictions"].result == SAME
    assert rows["predictions"].rebuilt == "120 rows identical"
    # The rerun is a run of its own, linked to the original, with the same inputs.
    assert rebuilt.tags[REPRODUCTION_TAG] == run_id
    assert rebuilt.components["code"].id == original.components["code"].id
    assert rebuilt.params == {"C": 0.5, "max_iter": 200}  # the uncommitted change applied
    assert [(m.model, m.version) for m in rebuilt.model_versions] == [("churn", 2)]
    assert any("modelrail.toml" in note for note in report.notes)  # left out, and said so
    # Kept: the worktree with the untracked helper and the ignored data linked in.
    assert report.kept_at is not None
    kept = Path(report.kept_at)
    try:
        assert (kept / "code" / "features.py").read_text().startswith("def prepare")
        assert (kept / "code" / "data" / "train.csv").is_symlink()
        assert worktrees(root) == [str(root), str(kept / "code")]
    finally:
        git(root, "worktree", "remove", "--force", str(kept / "code"))
        shutil.rmtree(kept)


def test_changed_data_is_refused_naming_it_and_its_original_can_be_given(
    churn: tuple[Path, str], tmp_path: Path
) -> None:
    root, _ = churn
    data = root / "data" / "train.csv"
    original = tmp_path / "train-original.csv"
    shutil.copy(data, original)
    churn_data(300, 99).to_csv(data, index=False)
    try:
        with open_client(root) as client:
            with pytest.raises(ReproduceError, match=r"data:train at .*train\.csv .* changed"):
                client.reproduce("churn:1", reuse_env=True, repository=str(root))
            assert worktrees(root) == [str(root)]
            report = client.reproduce(
                "churn:1", reuse_env=True, repository=str(root), data={"train": str(original)}
            )
        assert report.reproduced
    finally:
        shutil.copy(original, data)


def test_missing_data_and_unknown_roles_are_named(churn: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = churn
    with open_client(root) as client:
        with pytest.raises(ReproduceError, match=r"data:train: nothing at .*nowhere\.csv"):
            client.reproduce(
                "churn:1",
                reuse_env=True,
                repository=str(root),
                data={"train": str(tmp_path / "nowhere.csv")},
            )
        with pytest.raises(InvalidInputError, match="data names validation"):
            client.reproduce("churn:1", reuse_env=True, data={"validation": "x.csv"})
    assert worktrees(root) == [str(root)]


def test_metrics_compare_within_the_tolerance_and_ignored_ones_are_skipped(
    churn: tuple[Path, str],
) -> None:
    root, run_id = churn
    with open_client(root) as client:
        original = client.get_run(run_id)
    rebuilt = replace(original, metrics={"accuracy": original.metrics["accuracy"] + 1e-12})
    assert [r.result for r in compare_metrics(original, rebuilt, 1e-9, ())] == [SAME]
    (row,) = compare_metrics(original, rebuilt, 1e-13, ())
    assert row.result == DIFFERS and "off by +1e-12 (tolerance 1e-13)" in row.detail
    assert [r.result for r in compare_metrics(original, rebuilt, 0, ["accuracy"])] == [SKIPPED]
    (row,) = compare_metrics(original, replace(original, metrics={}), 1e-9, ())
    assert (row.result, row.rebuilt) == (DIFFERS, "not logged")


def test_a_commit_missing_from_the_repository_is_said_and_nothing_is_left(tmp_path: Path) -> None:
    root = make_project(tmp_path / "gone")
    train(root, "0.5")
    shutil.rmtree(root / ".git")  # history rewritten: the recorded commit is gone
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "train.py", ".gitignore")
    git(root, "commit", "-q", "-m", "new history")
    missing = pytest.raises(ReproduceError, match="is not in the repository at")
    with open_client(root) as client, missing:
        client.reproduce("churn:1", reuse_env=True, repository=str(root))
    assert worktrees(root) == [str(root)]


def test_runs_that_cannot_be_rebuilt_say_why(tmp_path: Path) -> None:
    no_commit = tmp_path / "fresh"
    no_commit.mkdir()
    git(no_commit, "init", "-q")
    script = "import modelrail\nwith modelrail.start_run('x') as run: pass\nprint('RUN', run.id)\n"
    (no_commit / "train.py").write_text(script)
    from modelrail.config import init_project

    init_project(no_commit)
    run_id = train(no_commit)
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "train.py").write_text(script)
    init_project(outside)
    plain_id = train(outside)
    first = pytest.raises(ReproduceError, match="before its repository's first commit")
    with open_client(no_commit) as client, first:
        client.reproduce(run_id, reuse_env=True)
    with open_client(outside) as client:
        with pytest.raises(ReproduceError, match="not made in a git repository"):
            client.reproduce(plain_id, reuse_env=True)
        interactive = _interactive_run(outside)
        with pytest.raises(ReproduceError, match="interactively"):
            client.reproduce(interactive, reuse_env=True)


def _interactive_run(root: Path) -> str:
    git(root, "init", "-q")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "x")
    code = "import modelrail\nwith modelrail.start_run('x') as run: pass\nprint('RUN', run.id)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split("RUN ")[-1].strip()


def test_reuse_env_names_the_packages_that_differ(
    churn: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelrail.portability import reproduce_env
    from modelrail.tracking.provenance import capture_environment

    current = capture_environment()
    changed = dict(current.packages, numpy="0.0.1")
    del changed["pandas"]
    monkeypatch.setattr(
        reproduce_env,
        "capture_environment",
        lambda: type(current)(**{**current.__dict__, "packages": changed}),
    )
    root, _ = churn
    with open_client(root) as client, pytest.raises(ReproduceError) as caught:
        client.reproduce("churn:1", reuse_env=True, repository=str(root))
    message = str(caught.value)
    assert "numpy " in message and "-> 0.0.1" in message and "pandas " in message
    assert "missing" in message and "reuse_env" in message
    assert worktrees(root) == [str(root)]


def test_stored_untracked_files_may_not_leave_the_worktree(tmp_path: Path) -> None:
    import hashlib
    import io
    import tarfile

    from modelrail.artifacts import ArtifactStore
    from modelrail.entities import ArtifactRecord
    from modelrail.portability.reproduce_worktree import Scratch

    store = ArtifactStore(tmp_path / "artifacts")
    for name in ("../escape.py", "/etc/evil.py"):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo(name)
            info.size = 3
            archive.addfile(info, io.BytesIO(b"x=1"))
        blob = store.put_bytes(buffer.getvalue())
        files = [{"path": name, "sha256": hashlib.sha256(b"x=1").hexdigest()}]
        scratch = Scratch(tmp_path, keep=False)
        scratch.code.mkdir()
        with scratch, pytest.raises(ReproduceError, match="stored untracked files of run x hold"):
            scratch.write_untracked(
                store, ArtifactRecord("t", blob.sha256, blob.size), files, "run x"
            )
        assert not scratch.root.exists()
    assert not (tmp_path / "escape.py").exists()


@pytest.mark.postgres
def test_a_run_recorded_in_postgresql_is_reproduced_there(tmp_path: Path) -> None:
    from modelrail.client import Client
    from modelrail.config import load_settings
    from tests.conftest import store_url_of

    for url in store_url_of("postgres", tmp_path):
        root = make_project(tmp_path / "churn")
        run_id = train(root, "0.5", env={"MODELRAIL_STORE": url})
        settings = load_settings(cwd=root, environ={}, create=False)
        with Client(store_url=url, settings=settings) as client:
            report = client.reproduce("churn:1", reuse_env=True, repository=str(root))
            rebuilt = client.get_run(report.rebuilt_run)
        assert report.reproduced, [row for row in report.rows if row.result != SAME]
        assert rebuilt.tags[REPRODUCTION_TAG] == run_id


def test_a_version_registered_outside_a_run_cannot_be_rebuilt(sqlite_client: Client) -> None:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    sqlite_client.register_model(model, "loose", input_example=X[:2])
    with pytest.raises(ReproduceError, match="loose:1 was registered outside a run"):
        sqlite_client.reproduce("loose:1", reuse_env=True)
    with pytest.raises(ModelNotFoundError, match="no model version or run is named 'nothing'"):
        sqlite_client.reproduce("nothing", reuse_env=True)


def test_a_code_difference_names_the_part_that_differs(churn: tuple[Path, str]) -> None:
    root, run_id = churn
    with open_client(root) as client:
        original = client.get_run(run_id)
    code = original.components["code"]
    snapshot = dict(original.provenance["code_snapshot"])
    snapshot["untracked"] = [{"path": "features.py", "sha256": "0" * 64, "size": 1}]
    git_state = {**original.provenance["git"], "diff_sha256": "1" * 64}
    rebuilt = replace(
        original,
        components={**original.components, "code": replace(code, fingerprint="2" * 64)},
        provenance={**original.provenance, "code_snapshot": snapshot, "git": git_state},
    )
    row = compare_components(original, rebuilt)[0]
    assert (row.component, row.result) == ("code", DIFFERS)
    assert row.detail == "differs in: uncommitted diff, untracked files features.py"

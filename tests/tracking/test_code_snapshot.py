"""A run from a dirty tree stores what a rebuild needs: the uncommitted diff and the untracked
files themselves (content-addressed, bounded in size, never files git ignores), the exact
command line and working folder, and where each dataset was read from."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from modelrail.client import Client
from modelrail.config import init_project, load_settings
from modelrail.errors import DatasetReadError
from modelrail.tracking import snapshot
from modelrail.tracking.provenance import capture_git
from modelrail.tracking.snapshot import DIFF_ARTIFACT, UNTRACKED_ARTIFACT, snapshot_of

TRAIN = """\
import sys
import modelrail
from helper import greeting
with modelrail.start_run(experiment="pets") as run:
    run.log_params({"lr": float(sys.argv[1]), "greeting": greeting()})
print(run.id)
"""


def git(cwd: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return dirty_repo(tmp_path)


def dirty_repo(tmp_path: Path) -> Path:
    """A project in a git repository with uncommitted changes and untracked files."""
    root = tmp_path / "pets"
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("secret.txt\n")
    (root / "train.py").write_text(TRAIN)
    (root / "util.py").write_text("VALUE = 1\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    init_project(root)
    # Uncommitted: a change to a tracked file, a staged new file, untracked files of every kind.
    (root / "util.py").write_text("VALUE = 2\n")
    (root / "staged.py").write_text("STAGED = True\n")
    git(root, "add", "staged.py")
    (root / "helper.py").write_text("def greeting():\n    return 'hello'\n")
    (root / "secret.txt").write_text("hunter2\n")  # ignored: never read
    (root / ".env").write_text("TOKEN=abc123\n")  # not ignored, but a secret by its name
    (root / "big.txt").write_text("x" * (snapshot.UNTRACKED_FILE_LIMIT + 1))
    (root / "blob.bin").write_bytes(b"\x00\x01binary")
    return root


def _client(root: Path) -> Client:
    return Client(settings=load_settings(cwd=root, environ={}, create=False))


def train(root: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "train.py", "0.5"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1]


def test_a_dirty_run_stores_its_diff_untracked_files_and_command_line(repo: Path) -> None:
    expected_diff = git(repo, "diff", "HEAD", "--binary")
    run_id = train(repo)
    with _client(repo) as client:
        run = client.get_run(run_id)
        stored_diff = client.run_artifact(run_id, DIFF_ARTIFACT)
        archive = client.run_artifact(run_id, UNTRACKED_ARTIFACT)
        every_byte = b"".join(client.run_artifact(run_id, a.path) for a in run.artifacts)

    assert stored_diff == expected_diff
    assert b"VALUE = 2" in stored_diff and b"STAGED = True" in stored_diff
    record = run.provenance["code_snapshot"]
    assert record["diff"]["sha256"] == hashlib.sha256(expected_diff).hexdigest()
    assert run.provenance["git"]["diff_sha256"] == record["diff"]["sha256"]
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert files == {"helper.py": b"def greeting():\n    return 'hello'\n"}
    assert [f["path"] for f in record["untracked"]] == ["helper.py"]
    reasons = {item["path"]: item["reason"] for item in record["left_out"]}
    assert "secrets" in reasons[".env"]
    assert "secrets or settings" in reasons["modelrail.toml"]
    assert "over 1.0 MiB" in reasons["big.txt"]
    assert reasons["blob.bin"] == "a binary file"
    assert "secret.txt" not in reasons  # ignored by git: not even looked at
    assert b"hunter2" not in every_byte and b"abc123" not in every_byte

    entry = run.provenance["entry_point"]
    assert entry["command"] == [sys.executable, "train.py", "0.5"]
    assert entry["interpreter"] == sys.executable
    assert entry["cwd"] == str(repo)
    assert entry["module"] is None

    # The stored diff applies to the commit, and with the untracked file rebuilds the tree.
    clone = repo.parent / "clone"
    git(repo.parent, "clone", "-q", str(repo), str(clone))
    (clone / "diff").write_bytes(stored_diff)
    git(clone, "apply", "--index", "diff")
    assert (clone / "util.py").read_text() == "VALUE = 2\n"
    assert (clone / "staged.py").read_text() == "STAGED = True\n"


def test_the_same_dirty_tree_gives_the_same_code_version_and_an_untracked_change_a_new_one(
    repo: Path,
) -> None:
    first, second = train(repo), train(repo)
    (repo / "helper.py").write_text("def greeting():\n    return 'hi'\n")
    third = train(repo)
    with _client(repo) as client:
        codes = [client.get_run(r).components["code"] for r in (first, second, third)]
    assert codes[0].id == codes[1].id
    assert codes[2].fingerprint != codes[0].fingerprint


def test_a_module_run_records_the_module(repo: Path) -> None:
    (repo / "pkg").mkdir()
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "fit.py").write_text(
        "import modelrail\nwith modelrail.start_run('pets') as run:\n    pass\nprint(run.id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "utf8", "-m", "pkg.fit", "--quick"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with _client(repo) as client:
        entry = client.get_run(done.stdout.split()[-1]).provenance["entry_point"]
    assert entry["module"] == "pkg.fit"
    assert entry["command"] == [sys.executable, "-X", "utf8", "-m", "pkg.fit", "--quick"]
    assert entry["arguments"] == ["--quick"]


def test_a_diff_over_the_limit_is_left_out_saying_why(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "DIFF_LIMIT", 64)
    capture_git.cache_clear()
    state = capture_git(str(repo))
    assert state is not None and state.dirty and state.diff_sha256
    taken = snapshot_of(state.root, state.diff, dirty=True)
    assert taken.diff is None
    reasons = {item.path: item.reason for item in taken.left_out}
    assert "over 64 bytes" in reasons["(uncommitted changes)"]
    capture_git.cache_clear()


def test_untracked_files_stop_at_the_total_and_the_count(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.py", "b.py", "c.py"):
        (repo / name).write_text("x = 1\n" * 10)
    monkeypatch.setattr(snapshot, "UNTRACKED_TOTAL_LIMIT", 150)
    taken = snapshot_of(str(repo), None, dirty=False)
    assert [f.path for f in taken.untracked] == ["a.py", "b.py"]
    reasons = {item.path: item.reason for item in taken.left_out}
    assert "in all" in reasons["c.py"]
    monkeypatch.setattr(snapshot, "UNTRACKED_MAX_FILES", 2)
    taken = snapshot_of(str(repo), None, dirty=False)
    assert "more than 2 files" in {i.path: i.reason for i in taken.left_out}["(untracked files)"]


def test_datasets_record_where_they_were_read_from(sqlite_client: Client, tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})
    csv = tmp_path / "train.csv"
    frame.to_csv(csv, index=False)
    with sqlite_client.start_run("pets") as run:
        from_file = run.log_dataset(csv, role="train", name="pets")
        from_frame = run.log_dataset(
            pd.read_csv(csv).head(2), role="validation", name="pets", source=csv
        )
        from_url = run.log_dataset(
            frame, role="test", name="pets", source="s3://bucket/pets/test.parquet"
        )
        with pytest.raises(DatasetReadError, match=r"source .*missing\.csv does not exist"):
            run.log_dataset(frame, role="test", source=tmp_path / "missing.csv")
    assert from_file.details["location"] == str(csv)
    assert from_frame.details["location"] == str(csv)
    assert from_frame.details["location_sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert from_url.details["location"] == "s3://bucket/pets/test.parquet"
    assert from_url.details["location_sha256"] is None


@pytest.mark.parametrize(
    ("argv0", "interactive"),
    [
        ("", True),
        ("-c", True),
        ("/venv/lib/python3.11/site-packages/ipykernel_launcher.py", True),
        ("/venv/bin/pytest", True),
        ("/venv/lib/python3.11/site-packages/pytest/__main__.py", True),
        ("/tmp/modelrail-reproduce-cx1/code/train.py", False),
        ("/home/ann/pytest-demos/train.py", False),
    ],
)
def test_what_counts_as_interactive(
    argv0: str, interactive: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelrail.tracking.provenance import capture_entry_point

    monkeypatch.setattr(sys, "argv", [argv0, "--fast"])
    assert capture_entry_point().interactive is interactive


def test_a_notebook_or_shell_run_keeps_the_diff_fingerprint_only(repo: Path) -> None:
    code = "import modelrail\nwith modelrail.start_run('pets') as run: pass\nprint(run.id)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    with _client(repo) as client:
        run = client.get_run(done.stdout.split()[-1])
    assert run.provenance["entry_point"]["interactive"] is True
    assert run.provenance["git"]["dirty"] and run.provenance["git"]["diff_sha256"]
    assert run.provenance["code_snapshot"] is None and run.artifacts == ()

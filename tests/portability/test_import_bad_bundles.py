"""A bundle that cannot be trusted is refused whole: a clear message, a non-zero exit, and
the store exactly as it was; a process killed mid-import leaves nothing half-written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from modelrail.client import Client
from modelrail.config import init_project
from modelrail.errors import BundleError
from modelrail.portability.bundle_format import HISTORY, MANIFEST
from tests.portability.exchange_helpers import MODEL, cli, open_as, train


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """churn:1 with its run, exported from a laptop's SQLite store."""
    root = tmp_path_factory.mktemp("laptop")
    init_project(root)
    with open_as(f"sqlite:///{root / '.modelrail' / 'modelrail.db'}", root, "bob") as bob:
        train(bob, 0.81)
        return bob.export_bundle([f"{MODEL}:1"], root / "churn-v1.mrbundle").path


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, Client]]:
    root = tmp_path / "team"
    root.mkdir()
    init_project(root)
    with open_as(f"sqlite:///{root / '.modelrail' / 'modelrail.db'}", root, "alice") as client:
        yield root, client


def rewritten(source: Path, target: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """A copy of the bundle with each member passed through ``change`` (None: left out)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info))
            if data is not None:
                new.writestr(info, data)
    return target


def _manifest(update: Callable[[dict[str, object]], None]) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        update(manifest)
        return json.dumps(manifest).encode()

    return change


def _flip_blob(name: str, data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1]) if name.startswith("blobs/") else data


def _edit_run(name: str, data: bytes) -> bytes:
    return data.replace(b'"C":0.5', b'"C":0.9') if name.startswith("records/runs/") else data


def _newer(manifest: dict[str, object]) -> None:
    manifest.update(format_version=99, modelrail_version="9.0")


DAMAGE: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing": (lambda b, t: t / "absent.mrbundle", "does not exist"),
    "not a bundle": (
        lambda b, t: _written(t / "notes.mrbundle", b"just some notes\n"),
        "not a modelrail bundle",
    ),
    "truncated": (
        lambda b, t: _written(t / "cut.mrbundle", b.read_bytes()[: b.stat().st_size // 2]),
        "truncated",
    ),
    "no manifest": (
        lambda b, t: rewritten(b, t / "x.mrbundle", lambda n, d: None if n == MANIFEST else d),
        "or it is truncated: it holds no manifest.json",
    ),
    "changed file": (
        lambda b, t: rewritten(b, t / "x.mrbundle", _flip_blob),
        "damaged or tampered with",
    ),
    "changed record": (
        lambda b, t: rewritten(b, t / "x.mrbundle", _edit_run),
        "damaged or tampered with",
    ),
    "member left out": (
        lambda b, t: rewritten(b, t / "x.mrbundle", lambda n, d: None if n == HISTORY else d),
        f"lacks {HISTORY}",
    ),
    "member added": (
        lambda b, t: _added(b, t / "x.mrbundle", "records/runs/" + "0" * 32 + ".json"),
        "which its manifest does not list",
    ),
    "newer format": (
        lambda b, t: rewritten(b, t / "x.mrbundle", _manifest(_newer)),
        "written by modelrail 9.0 in bundle format 99",
    ),
}


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _added(source: Path, target: Path, name: str) -> Path:
    shutil.copy(source, target)
    with zipfile.ZipFile(target, "a") as archive:
        archive.writestr(name, b"{}")
    return target


def assert_untouched(root: Path, client: Client) -> None:
    assert client.tracker().total == 0 and client.list_models() == []
    assert client.imports() == [] and client.history() == []
    assert not list((root / ".modelrail").rglob("sha256/*/*"))  # no file stored either


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_bad_bundle_is_refused_whole(
    damage: str, bundle: Path, project: tuple[Path, Client], tmp_path: Path
) -> None:
    root, client = project
    make, message = DAMAGE[damage]
    bad = make(bundle, tmp_path)
    with pytest.raises(BundleError, match=message) as refused:
        client.import_bundle(bad)
    assert refused.value.exit_code == 2
    assert_untouched(root, client)


@pytest.mark.parametrize("damage", ["missing", "truncated", "newer format"])
def test_the_command_says_what_is_wrong_and_exits_non_zero(
    damage: str, bundle: Path, project: tuple[Path, Client], tmp_path: Path
) -> None:
    root, client = project
    make, message = DAMAGE[damage]
    done = cli(root, "import", str(make(bundle, tmp_path)))
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert "Traceback" not in done.stderr
    assert_untouched(root, client)


def test_a_conflicting_version_is_named_and_nothing_is_imported(
    bundle: Path, project: tuple[Path, Client]
) -> None:
    root, client = project
    assert train(client, 0.7, seed=3) == 1  # another churn:1 here
    done = cli(root, "import", str(bundle))
    assert done.returncode == 5, done.stderr
    assert "model 'churn' already has a version 1 in this store with different" in done.stderr
    assert client.tracker().total == 1 and client.imports() == []


_KILLED_IMPORT = """
import os, signal, sys
from modelrail.client import Client
from modelrail.config import load_settings
from modelrail.store import import_repo

def killed(self, record):  # the process dies inside the records' transaction
    os.kill(os.getpid(), signal.SIGKILL)

import_repo.ImportWriter.add_version = killed
with Client(settings=load_settings(create=False), user="alice") as client:
    client.import_bundle(sys.argv[1])
"""


def test_a_process_killed_mid_import_leaves_the_store_unchanged_and_the_import_resumes(
    bundle: Path, project: tuple[Path, Client]
) -> None:
    root, client = project
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_IMPORT, str(bundle)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    # The run was written before the kill in the same transaction: it is gone with it.
    assert client.tracker().total == 0 and client.list_models() == []
    assert client.imports() == [] and client.history() == []

    done = cli(root, "import", str(bundle))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("imported churn:1")
    assert client.tracker().total == 1 and client.get_model_version("churn:1").created_by == "bob"

"""``reproduce`` building a real virtual environment with the recorded package versions.

The run is made in a small environment built here, so the recorded package set is small:
a wheel from a local folder (``tinydep``) and modelrail itself, installed editable from a
checkout. modelrail's own dependencies are importable through PYTHONPATH from a folder of
links that holds no package metadata, so they are not part of the recorded set (a stand-in
for an index the tests cannot reach). The rebuilt environment installs ``tinydep`` from the
wheel folder (``--no-index``) with pip, then with uv, links the running modelrail, and reruns
there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import modelrail
from modelrail.errors import ReproduceError
from modelrail.portability.reproduce_compare import SAME
from tests.portability.reproduce_project import make_project, open_client, train, worktrees

USES_TINYDEP = """\
from tinydep import SCALE

def prepare(frame):
    X = frame[["tenure", "charges", "calls"]] * SCALE
    return X, frame["churned"]
"""


def _wheel(folder: Path) -> Path:
    """tinydep 1.0 as a wheel, written by hand: nothing to build, no index to reach."""
    folder.mkdir()
    path = folder / "tinydep-1.0-py3-none-any.whl"
    files = {
        "tinydep/__init__.py": "SCALE = 1.0\n",
        "tinydep-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
        "tinydep-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "tinydep-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("tinydep-1.0.dist-info/RECORD", record)
    return folder


def _dependencies_without_metadata(folder: Path) -> Path:
    """Links to everything importable in this environment's site-packages but its package
    metadata, .pth files and modelrail (which comes with its metadata, as installed)."""
    folder.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name
        if name.endswith((".dist-info", ".egg-info", ".pth")) or name.startswith("__editable__"):
            continue
        (folder / name).symlink_to(entry, target_is_directory=entry.is_dir())
    return folder


def _small_environment(target: Path, wheels: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    subprocess.run(
        [*pip, "--no-index", "--find-links", str(wheels), "--no-deps", "tinydep==1.0"], check=True
    )
    # modelrail as an editable checkout is seen: its package and its metadata.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    links = target / "links"
    links.mkdir()
    (links / "modelrail").symlink_to(Path(modelrail.__file__).parent)
    info = Path(str(metadata.distribution("modelrail").locate_file("x"))).parent
    dist_info = next(info.glob("modelrail-*.dist-info"))
    (links / dist_info.name).symlink_to(dist_info)
    (Path(purelib) / "links.pth").write_text(f"{links}\n")
    return python


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_run_is_rerun_in_a_new_environment_with_the_recorded_packages(
    installer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = _wheel(tmp_path / "wheels")
    dependencies = _dependencies_without_metadata(tmp_path / "deps")
    python = _small_environment(tmp_path / "small-env", wheels)
    root = make_project(tmp_path / "churn")
    (root / "features.py").write_text(USES_TINYDEP)
    monkeypatch.setenv("PYTHONPATH", str(dependencies))
    run_id = train(root, "0.5", python=str(python), env={"PYTHONPATH": str(dependencies)})
    with open_client(root) as client:
        recorded = client.get_run(run_id).components["environment"].details["packages"]
        assert recorded == {"modelrail": modelrail_version(), "tinydep": "1.0"}

        empty = tmp_path / "no-wheels"
        empty.mkdir()
        with pytest.raises(ReproduceError, match=r"installing the recorded packages failed.*tiny"):
            client.reproduce(
                "churn:1",
                find_links=[str(empty)],
                use_index=False,
                installer=installer,
                repository=str(root),
            )
        assert worktrees(root) == [str(root)]

        report = client.reproduce(
            "churn:1",
            find_links=[str(wheels)],
            use_index=False,
            installer=installer,
            repository=str(root),
        )
        rebuilt = client.get_run(report.rebuilt_run)
    assert report.reproduced, [row for row in report.rows if row.result != SAME]
    rows = {row.component: row for row in report.rows}
    assert rows["environment"].rebuilt == f"{sys.version.split()[0]}, 2 packages"
    assert rows["predictions"].result == SAME
    assert any("modelrail: linked this installation's modelrail" in n for n in report.notes)
    assert f"environment: built with {installer}, 1 package from {wheels}" in report.notes
    entry = rebuilt.provenance["entry_point"]
    assert entry["interpreter"] != str(python) and entry["interpreter"].endswith("/env/bin/python")
    assert not Path(entry["interpreter"]).exists()  # the scratch environment is gone
    assert worktrees(root) == [str(root)]
    shutil.rmtree(dependencies)


def modelrail_version() -> str:
    return metadata.version("modelrail")

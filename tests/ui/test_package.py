"""The dashboard's templates and style sheet ship inside the wheel: nothing is fetched."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "src" / "modelrail" / "ui"


@pytest.mark.slow
def test_the_wheel_holds_every_template_and_static_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("modelrail-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [
        "modelrail/" + path.relative_to(UI.parent).as_posix()
        for folder in ("templates", "static")
        for path in sorted((UI / folder).rglob("*"))
        if path.is_file()
    ]
    assert any(name.endswith("app.css") for name in shipped)
    missing = [name for name in shipped if name not in names]
    assert not missing, f"not in the wheel: {missing}"

"""The Python a rebuilt run runs under: the current environment when its packages are the
recorded ones (``reuse``), or a new virtual environment with the recorded versions, made by
uv when it is installed, else by pip, from the package index or wheel folders.

Packages that were installed from local folders have no version to ask an index for: one
from inside the run's repository is installed from the rebuilt code; modelrail itself (a
checkout, editable) is linked from the running installation, which the rerun needs anyway
to record itself; anything else from the folder it was installed from, if it is still there.
Each such choice is reported as a note.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from modelrail.errors import InvalidInputError, ReproduceError
from modelrail.tracking.provenance import capture_environment

_SELF = "modelrail"


@dataclass(frozen=True)
class BuiltEnvironment:
    python: str  # the interpreter to run
    python_path: tuple[str, ...] = ()  # folders put first on PYTHONPATH
    notes: tuple[str, ...] = field(default_factory=tuple)
    virtual_env: str | None = None  # a built environment's folder


def package_differences(
    recorded_python: str,
    recorded: Mapping[str, str],
    current_python: str,
    current: Mapping[str, str],
) -> list[str]:
    """What differs between two environments, one line per package, Python first."""
    lines = []
    if recorded_python != current_python:
        lines.append(f"python {recorded_python} -> {current_python}")
    for name in sorted(set(recorded) | set(current)):
        before, after = recorded.get(name), current.get(name)
        if before == after:
            continue
        if after is None:
            lines.append(f"{name} {before} missing")
        elif before is None:
            lines.append(f"{name} {after} not recorded")
        else:
            lines.append(f"{name} {before} -> {after}")
    return lines


def reuse_current(
    python_version: str,
    packages: Mapping[str, str],
    local_packages: Mapping[str, Mapping[str, Any]],
    code_for: Callable[[str], Path | None],
) -> BuiltEnvironment:
    """This environment, when it holds exactly the recorded packages; else the differences."""
    current = capture_environment()
    differences = package_differences(
        python_version, packages, current.python_version, current.packages
    )
    if differences:
        shown = "; ".join(differences[:12])
        more = f" (and {len(differences) - 12} more)" if len(differences) > 12 else ""
        raise ReproduceError(
            f"the current environment is not the recorded one: {shown}{more}. "
            "Leave out {reuse_env} to build one with the recorded versions",
            params=("reuse_env",),
        )
    paths, notes = [], []
    for name, origin in sorted(local_packages.items()):
        rebuilt = code_for(str(origin.get("path", "")))
        if rebuilt is not None and origin.get("editable"):
            # The editable install points at the original checkout: import the rebuilt code.
            paths.append(str(_import_root(rebuilt)))
            notes.append(f"{name}: imported from the rebuilt code (installed editable)")
    return BuiltEnvironment(sys.executable, tuple(paths), tuple(notes))


def build_environment(
    target: Path,
    python_version: str,
    packages: Mapping[str, str],
    local_packages: Mapping[str, Mapping[str, Any]],
    code_for: Callable[[str], Path | None],
    *,
    find_links: Sequence[str] = (),
    use_index: bool = True,
    installer: str = "auto",
    progress: Callable[[str], None] = lambda _: None,
) -> BuiltEnvironment:
    """A new virtual environment at ``target`` with the recorded package versions, made by
    ``installer``: "uv", "pip", or "auto" (uv when it is installed, else pip)."""
    uv = _uv(installer)
    tool = "uv" if uv else "pip"
    progress(f"building a Python {python_version} environment with {tool}")
    python = _create(target, python_version, uv)
    sources = [arg for folder in find_links for arg in ("--find-links", folder)]
    if not use_index:
        sources.append("--no-index")
    pinned = [
        f"{name}=={version}" for name, version in packages.items() if name not in local_packages
    ]
    where = ", ".join(find_links) or "the package index"
    if find_links and use_index:
        where += " and the package index"
    count = f"{len(pinned)} package{'' if len(pinned) == 1 else 's'}"
    notes = [f"environment: built with {tool}, {count} from {where}"]
    if pinned:
        progress(f"installing {len(pinned)} recorded packages")
        requirements = target / "recorded-requirements.txt"
        requirements.write_text("\n".join(pinned) + "\n", encoding="utf-8")
        _install(
            uv, python, ["--no-deps", "-r", str(requirements), *sources], "the recorded packages"
        )
    for name, origin in sorted(local_packages.items()):
        notes.append(_install_local(uv, python, name, origin, packages, code_for, sources))
    return BuiltEnvironment(str(python), (), tuple(notes), str(target))


INSTALLERS = ("auto", "uv", "pip")


def check_installer(installer: str) -> None:
    if installer not in INSTALLERS:
        raise InvalidInputError(
            f"{{installer}} must be one of {', '.join(INSTALLERS)}, got {installer!r}",
            params=("installer",),
        )


def _uv(installer: str) -> str | None:
    """uv's path when it is to be used; None for pip."""
    check_installer(installer)
    if installer == "pip":
        return None
    # On PATH, or beside this interpreter (installed into the same environment).
    beside = Path(sys.executable).with_name("uv.exe" if sys.platform == "win32" else "uv")
    found = shutil.which("uv") or (str(beside) if beside.is_file() else None)
    if found is None and installer == "uv":
        raise ReproduceError(
            "uv is not installed here: install it, or use {installer} pip", params=("installer",)
        )
    return found


def _create(target: Path, python_version: str, uv: str | None) -> Path:
    if uv:
        # This interpreter when it is the recorded one: uv need not look for one (or fetch it).
        same = platform.python_version() == python_version
        wanted = sys.executable if same else python_version
        _run([uv, "venv", "--quiet", "--python", wanted, str(target)], "uv venv")
    else:
        running = ".".join(str(p) for p in sys.version_info[:2])
        wanted = ".".join(python_version.split(".")[:2])
        if running != wanted:
            raise ReproduceError(
                f"the run used Python {python_version} and this is Python {running}: install uv "
                f"(it fetches the right Python) or run modelrail from a Python {wanted}"
            )
        if importlib.util.find_spec("pip") is None:
            raise ReproduceError(
                "neither uv nor pip is installed here: install one to build environments"
            )
        _run([sys.executable, "-m", "venv", "--without-pip", str(target)], "python -m venv")
    return target / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _install(uv: str | None, python: Path, arguments: list[str], what: str) -> None:
    if uv:
        command = [uv, "pip", "install", "--quiet", "--python", str(python), *arguments]
    else:
        command = [
            sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
            "--disable-pip-version-check", "--no-input", *arguments,
        ]  # fmt: skip
    _run(command, f"installing {what}")


def _install_local(
    uv: str | None,
    python: Path,
    name: str,
    origin: Mapping[str, Any],
    packages: Mapping[str, str],
    code_for: Callable[[str], Path | None],
    sources: list[str],
) -> str:
    path = str(origin.get("path", ""))
    editable = bool(origin.get("editable"))
    version = packages.get(name, "?")
    rebuilt = code_for(path)
    if rebuilt is not None:
        _install(
            uv, python, ["--no-deps", *(["-e"] if editable else []), str(rebuilt), *sources], name
        )
        return f"{name}: installed from the rebuilt code (recorded {version} from {path})"
    if name == _SELF:
        running = _link_running_modelrail(python)
        return (
            f"{name}: linked this installation's modelrail {running} "
            f"(recorded {version} from {path})"
        )
    if not Path(path).exists():
        raise ReproduceError(
            f"package {name} {version} was installed from {path}, which is no longer there"
        )
    _install(uv, python, ["--no-deps", *(["-e"] if editable else []), path, *sources], name)
    return f"{name}: installed from {path} as recorded (its content was not recorded)"


def _link_running_modelrail(python: Path) -> str:
    """Make the running modelrail importable in the environment, with its metadata, without
    building it: a folder of links named by a .pth file, as an editable install does."""
    import modelrail

    dist = metadata.distribution(_SELF)
    record = next((f for f in dist.files or () if f.name == "METADATA"), None)
    if record is None:
        raise ReproduceError("the running modelrail has no installation metadata to link")
    info = Path(str(dist.locate_file(record))).parent
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        "finding the environment's site-packages",
    ).strip()
    links = python.parent.parent / "modelrail-link"
    links.mkdir(exist_ok=True)
    (links / _SELF).symlink_to(Path(modelrail.__file__).parent, target_is_directory=True)
    (links / info.name).symlink_to(info, target_is_directory=True)
    (Path(purelib) / "modelrail-link.pth").write_text(f"{links}\n", encoding="utf-8")
    return dist.version


def _import_root(project: Path) -> Path:
    """Where a project's packages import from: ``src/`` in a src layout, else the project."""
    return project / "src" if (project / "src").is_dir() else project


def _run(command: list[str], what: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ReproduceError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise ReproduceError(f"{what} failed: " + " / ".join(lines[-4:]))
    return done.stdout

"""The code a custom Python model ships with: collected from ``code_paths`` when it is
logged, extracted to a private folder and imported from there when it is loaded.

Loading must neither reuse a module of the same name that this process imported from
elsewhere (another project's ``model.py``, another version's copy of it) nor leave the
shipped modules shadowing anything afterwards. So the shipped modules are imported only
while a version loads, by a finder put first on ``sys.meta_path`` that answers for the
shipped names alone; modules of those names already imported are set aside for that
moment and put back afterwards, and ``sys.path`` is never touched. The loaded objects keep
their classes, whose functions keep their own module's globals, so two versions whose code
uses the same module names work side by side in one process.

The source that runs is the verified bytes of the artifact, never re-read from disk and
never a cached ``.pyc``; the extracted files are there for ``__file__``, package data and
tracebacks, and are checked against their sha256 on every load.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.readers import FileReader
from pathlib import Path
from types import ModuleType

from modelrail.errors import ArtifactIntegrityError, ModelFlavorError

# Compiled code cannot be read, checked or run on another platform: such files are refused.
_COMPILED = frozenset({".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib"})
# Swapping these out of sys.modules while a version loads would break modelrail itself.
_RESERVED = frozenset({"modelrail", "numpy", "pandas", "scipy", "sklearn", "skops", "joblib"})
_MAX_BYTES = 64 * 1024 * 1024
# sys.modules is one per process: two threads loading shipped code at once must take turns.
_IMPORTING = threading.RLock()


def collect(code_paths: Sequence[str]) -> dict[str, bytes]:
    """``{relative posix path: content}`` of the files to ship: each ``.py`` file at the top,
    each folder (a package, or a namespace package) under its own name with its data files;
    hidden files and ``__pycache__`` are left out."""
    files: dict[str, bytes] = {}
    for given in code_paths:
        path = Path(given)
        if path.is_dir():
            top = path.resolve().name
            found = [
                (f"{top}/{file.relative_to(path).as_posix()}", file)
                for file in sorted(path.rglob("*"))
                if file.is_file() and not _skipped(file.relative_to(path))
            ]
        elif path.suffix == ".py":
            top, found = path.stem, [(path.name, path)]
        else:
            raise ModelFlavorError(
                f"code path {given!r} is not a .py file or a folder: code_paths ship Python "
                "source files and package folders (with their data files)"
            )
        _check_top(top, given)
        for relative, file in found:
            if file.suffix in _COMPILED:
                raise ModelFlavorError(
                    f"code path {given!r} holds the compiled file {relative}: only source can "
                    "be shipped; install compiled code as a package instead"
                )
            if relative in files:
                raise ModelFlavorError(f"{relative} is shipped twice by code_paths")
            files[relative] = file.read_bytes()
    if sum(len(content) for content in files.values()) > _MAX_BYTES:
        raise ModelFlavorError(
            f"code_paths hold more than {_MAX_BYTES // 2**20} MB: ship the code, and log "
            "data files as run artifacts"
        )
    return dict(sorted(files.items()))


def _skipped(relative: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def _check_top(top: str, given: str) -> None:
    if not top.isidentifier():
        raise ModelFlavorError(
            f"code path {given!r} cannot be imported: {top!r} is not a Python module name"
        )
    if top in sys.stdlib_module_names or top in _RESERVED:
        raise ModelFlavorError(
            f"code path {given!r} would ship a module named {top!r}, which would hide "
            f"Python's or modelrail's own {top}: rename it"
        )


def top_names(files: Mapping[str, object]) -> frozenset[str]:
    return frozenset(path.split("/", 1)[0].removesuffix(".py") for path in files)


def module_file(files: Mapping[str, object], module: str) -> str | None:
    """The shipped file that defines ``module``, if any."""
    stem = module.replace(".", "/")
    return next((p for p in (f"{stem}.py", f"{stem}/__init__.py") if p in files), None)


def imported_names(files: Mapping[str, bytes]) -> frozenset[str]:
    """The top-level names the shipped ``.py`` files import (absolute imports only)."""
    names: set[str] = set()
    for path, content in files.items():
        if not path.endswith(".py"):
            continue
        try:
            tree = ast.parse(content, filename=path)
        except (SyntaxError, ValueError) as exc:
            raise ModelFlavorError(f"shipped file {path} is not valid Python: {exc}") from exc
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".", 1)[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".", 1)[0])
    return frozenset(names)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def code_digest(hashes: Mapping[str, str]) -> str:
    """One name for a set of files: equal only for the same paths with the same content."""
    return sha256(
        "".join(f"{path}\0{digest}\n" for path, digest in sorted(hashes.items())).encode()
    )


# -- loading --------------------------------------------------------------------------------


def extracted(sources: Mapping[str, bytes], label: str) -> Path:
    """The folder holding ``sources`` (already checked against the registry), written once
    per distinct content under the user's cache and checked on every load."""
    hashes = {path: sha256(content) for path, content in sources.items()}
    base = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "modelrail"
    folder = base / "code" / code_digest(hashes)
    if not folder.is_dir():
        try:
            _write_atomically(sources, folder)
        except OSError:
            # A read-only home (a container, say): a private folder of this process instead.
            folder = Path(tempfile.mkdtemp(prefix="modelrail-code-"))
            _write(sources, folder)
    for path, digest in hashes.items():
        try:
            found = sha256(folder.joinpath(*path.split("/")).read_bytes())
        except OSError:
            found = "missing"
        if found != digest:
            raise ArtifactIntegrityError(
                f"shipped code file {path} of {label} in {folder} has sha256 {found[:12]}... "
                f"but the registry recorded {digest[:12]}...: it was changed after it was "
                f"extracted; refusing to load it (delete {folder} to extract it again)"
            )
    return folder


def _write_atomically(sources: Mapping[str, bytes], folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name[:12]}-", dir=folder.parent))
    try:
        _write(sources, temporary)
        os.rename(temporary, folder)
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        if not folder.is_dir():  # else another process extracted the same content first
            raise


def _write(sources: Mapping[str, bytes], folder: Path) -> None:
    for path, content in sources.items():
        target = folder.joinpath(*path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


@contextmanager
def shipped_imports(folder: Path, sources: Mapping[str, bytes]) -> Iterator[None]:
    """Within the block, the shipped modules and only they come from ``folder``."""
    tops = top_names(sources)
    finder = _ShippedFinder(folder, sources, tops)
    with _IMPORTING:
        set_aside = _take(tops)
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            sys.meta_path.remove(finder)
            _take(tops)
            sys.modules.update(set_aside)


def _take(tops: frozenset[str]) -> dict[str, ModuleType]:
    """Remove and return the modules of ``tops`` (and their submodules) in sys.modules."""
    names = [name for name in sys.modules if name.split(".", 1)[0] in tops]
    return {name: sys.modules.pop(name) for name in names}


class _ShippedFinder(importlib.abc.MetaPathFinder):
    def __init__(self, folder: Path, sources: Mapping[str, bytes], tops: frozenset[str]) -> None:
        self.folder = folder
        self.sources = sources
        self.tops = tops

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".", 1)[0] not in self.tops:
            return None
        relative = module_file(self.sources, fullname)
        stem = fullname.replace(".", "/")
        if relative is not None:
            location = str(self.folder.joinpath(*relative.split("/")))
            loader = _ShippedLoader(location, self.sources[relative])
            package = relative.endswith("/__init__.py")
            below = [str(self.folder.joinpath(*stem.split("/")))] if package else None
            return importlib.util.spec_from_file_location(
                fullname, location, loader=loader, submodule_search_locations=below
            )
        if any(p.startswith(f"{stem}/") for p in self.sources):  # a namespace package
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [str(self.folder.joinpath(*stem.split("/")))]
            return spec
        # Never fall through to other finders: a file left in the folder is not shipped code.
        raise ModuleNotFoundError(
            f"No module named {fullname!r} in the code shipped with this model", name=fullname
        )


class _ShippedLoader(importlib.abc.SourceLoader):
    """Runs the verified source; ``path_stats`` is left unimplemented, so bytecode caches
    are neither read nor written."""

    def __init__(self, location: str, source: bytes) -> None:
        self.location = location
        self.path = location  # what importlib's FileReader reads package data beside
        self.source = source

    def get_filename(self, fullname: str) -> str:
        return self.location

    def get_resource_reader(self, fullname: str) -> FileReader:
        # importlib.resources.files(package) then finds the shipped data files, as it does
        # for an installed package (they were checked against their sha256 at extraction).
        return FileReader(self)  # type: ignore[arg-type]  # it only reads .path

    def get_data(self, path: str) -> bytes:
        if path != self.location:
            raise OSError(f"{path} is not shipped source")
        return self.source

"""What a run's record says about rebuilding it, read and checked before anything is made:
the commit, the stored diff and untracked files, the entry point, the environment and the
data. A record that cannot be rebuilt (no git, no commit, a notebook, changes that were not
stored) is refused here with the reason, so nothing is created for it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from modelrail.entities import ArtifactRecord, ComponentVersion, Run
from modelrail.errors import InvalidInputError, ReproduceError
from modelrail.tracking.snapshot import DIFF_ARTIFACT, UNTRACKED_ARTIFACT

# The tag a rerun's run carries: the id of the run it reproduces.
REPRODUCTION_TAG = "modelrail.reproduction_of"


@dataclass(frozen=True)
class DataPlan:
    role: str  # "train", "validation", "test"
    component: ComponentVersion
    location: str | None  # recorded: an absolute path or a URL
    location_sha256: str | None  # the bytes there, when data was logged from memory
    override: str | None  # given with data={"train": PATH}


@dataclass(frozen=True)
class RebuildPlan:
    run: Run
    repository_root: str  # where the run's repository was (paths below are mapped from it)
    commit: str
    dirty: bool
    diff: ArtifactRecord | None
    untracked: ArtifactRecord | None
    untracked_files: tuple[Mapping[str, Any], ...]
    left_out: tuple[Mapping[str, Any], ...]
    script: str | None  # relative to the repository, with "/"
    module: str | None
    arguments: tuple[str, ...]
    interpreter_options: tuple[str, ...]
    cwd: str  # relative to the repository ("" for its root)
    python_version: str
    packages: Mapping[str, str]
    local_packages: Mapping[str, Mapping[str, Any]]
    data: tuple[DataPlan, ...]

    @property
    def short_commit(self) -> str:
        return self.commit[:7]


def plan_rebuild(run: Run, data: Mapping[str, str]) -> RebuildPlan:
    provenance = run.provenance
    git = provenance.get("git")
    what = f"run {run.short_id}"
    if not isinstance(git, Mapping):
        raise ReproduceError(f"{what} was not made in a git repository: no commit to rebuild from")
    commit = git.get("commit")
    if not isinstance(commit, str) or not commit:
        raise ReproduceError(f"{what} was made before its repository's first commit")
    entry = provenance.get("entry_point") or {}
    root = str(git.get("root") or "")
    script, module = _entry(entry, root, what)
    snapshot = provenance.get("code_snapshot")
    dirty = bool(git.get("dirty"))
    diff = _artifact(run, DIFF_ARTIFACT)
    if dirty and diff is None:
        raise ReproduceError(f"{what} was made with uncommitted changes that were {_why(snapshot)}")
    environment = run.components.get("environment")
    details = environment.details if environment is not None else {}
    packages = details.get("packages")
    if not isinstance(packages, Mapping) or not details.get("python"):
        raise ReproduceError(f"{what} recorded no Python environment")
    recorded_env = provenance.get("environment") or {}
    return RebuildPlan(
        run=run,
        repository_root=root,
        commit=commit,
        dirty=dirty,
        diff=diff,
        untracked=_artifact(run, UNTRACKED_ARTIFACT),
        untracked_files=tuple((snapshot or {}).get("untracked") or ()),
        left_out=tuple((snapshot or {}).get("left_out") or ()),
        script=script,
        module=module,
        arguments=tuple(str(a) for a in entry.get("arguments") or ()),
        interpreter_options=_options(entry, module),
        cwd=relative_to_root(entry.get("cwd"), root)
        or (str(PurePosixPath(script).parent) if script else ""),
        python_version=str(details["python"]),
        packages={str(k): str(v) for k, v in packages.items()},
        local_packages=dict(recorded_env.get("local_packages") or {}),
        data=_data_plans(run, data),
    )


def _entry(entry: Mapping[str, Any], root: str, what: str) -> tuple[str | None, str | None]:
    module = entry.get("module")
    script = entry.get("script")
    if entry.get("interactive") or not (script or module):
        raise ReproduceError(
            f"{what} was made interactively (a notebook, a shell or python -c): "
            "there is no script to run again"
        )
    relative = relative_to_root(script, root) if script else None
    if script and relative is None:
        raise ReproduceError(
            f"{what} ran {script}, which is outside its repository {root}: "
            "its code is not in the commit"
        )
    return relative, module if isinstance(module, str) else None


def relative_to_root(path: object, root: str) -> str | None:
    """``path`` relative to ``root`` with "/", or None when it is not inside it."""
    if not isinstance(path, str) or not path or not root:
        return None
    inner, outer = PurePosixPath(path), PurePosixPath(root)
    if inner == outer:
        return ""
    if outer not in inner.parents:
        return None
    return inner.relative_to(outer).as_posix()


def _options(entry: Mapping[str, Any], module: str | None) -> tuple[str, ...]:
    """The interpreter's own options (``-X utf8``, ``-O``) from the recorded command line."""
    command = [str(c) for c in entry.get("command") or ()]
    arguments = list(entry.get("arguments") or ())
    tail = len(arguments) + (2 if module else 1)
    if len(command) < tail + 1:
        return ()
    options = command[1 : len(command) - tail]
    if module and command[len(command) - tail] != "-m":
        return ()  # "-mpkg.train" written together: leave the options alone
    return tuple(options)


def _why(snapshot: object) -> str:
    if isinstance(snapshot, Mapping):
        for item in snapshot.get("left_out") or ():
            if item.get("path") == "(uncommitted changes)":
                return f"not stored: {item.get('reason')}"
    return "not stored (recorded by a modelrail that kept only their fingerprint)"


def _artifact(run: Run, path: str) -> ArtifactRecord | None:
    return next((a for a in run.artifacts if a.path == path), None)


def _data_plans(run: Run, data: Mapping[str, str]) -> tuple[DataPlan, ...]:
    roles = {role.removeprefix("data:"): path for role, path in data.items()}
    recorded = {
        role.removeprefix("data:"): cv for role, cv in run.components.items() if cv.kind == "data"
    }
    unknown = sorted(set(roles) - set(recorded))
    if unknown:
        raise InvalidInputError(
            f"{{data}} names {', '.join(unknown)}, but run {run.short_id} recorded "
            f"{', '.join(sorted(recorded)) or 'no data'}",
            params=("data",),
        )
    plans = []
    for role, cv in sorted(recorded.items(), key=lambda item: _ROLE_ORDER.get(item[0], 9)):
        location = cv.details.get("location")
        source = cv.details.get("source")
        if not location and isinstance(source, str) and source.startswith("/"):
            location = source  # recorded before locations were: a file logged by its path
        sha = cv.details.get("location_sha256")
        plans.append(
            DataPlan(
                role=role,
                component=cv,
                location=str(location) if location else None,
                location_sha256=str(sha) if sha else None,
                override=roles.get(role),
            )
        )
    return tuple(plans)


_ROLE_ORDER = {"train": 0, "validation": 1, "test": 2}


def describe_left_out(plan: RebuildPlan) -> Sequence[str]:
    """Notes on untracked files that were not stored (the rebuild goes on without them)."""
    return [
        f"left out when the run was recorded: {item.get('path')} ({item.get('reason')})"
        for item in plan.left_out
        if item.get("path") != "(uncommitted changes)"
    ]

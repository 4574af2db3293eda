"""Each dataset of a run, found and checked before the rerun reads it: at its recorded
location, or where the caller says it is now. Data inside the run's repository that the
rebuilt worktree lacks (ignored by git, say) is linked into the worktree where the script
will look for it; data outside it is read where it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modelrail.errors import ReproduceError
from modelrail.portability.reproduce_plan import DataPlan, RebuildPlan, relative_to_root
from modelrail.portability.reproduce_worktree import Scratch
from modelrail.tracking.datasets import fingerprint_dataset
from modelrail.tracking.sources import digest_location, is_url


def check_data(
    plan: RebuildPlan, scratch: Scratch, notes: list[str], progress: Callable[[str], None]
) -> dict[str, Path]:
    """Every dataset checked; the local path of each, by role, for scoring afterwards."""
    found: dict[str, Path] = {}
    what = f"run {plan.run.short_id}"
    for item in plan.data:
        label = f"data:{item.role}"
        if item.location is None and item.override is None:
            notes.append(
                f"{label}: no recorded location (logged from memory); compared by the rerun"
            )
            continue
        if item.location is not None and is_url(item.location) and item.override is None:
            notes.append(f"{label}: read from {item.location}; compared by the rerun")
            continue
        inside = (
            None if item.location is None else relative_to_root(item.location, plan.repository_root)
        )
        progress(f"checking {label}")
        if inside is None:
            if item.override is not None and item.location is not None:
                raise ReproduceError(
                    f"{label} was read from {item.location}, outside the repository, and the "
                    f"script reads it from there: {{data}} cannot move it; put it back there",
                    params=("data",),
                )
            path = Path(item.override or item.location or "")
            _check(item, path, what)
            found[item.role] = path
            continue
        in_tree = scratch.code / inside
        if in_tree.exists() and item.override is None:
            _check(item, in_tree, what)  # part of the rebuilt code (committed or stored)
            found[item.role] = in_tree
            continue
        if in_tree.exists():
            raise ReproduceError(
                f"{label} is {inside} in the run's commit: {{data}} cannot replace it",
                params=("data",),
            )
        source = Path(item.override or item.location or "")
        _check(item, source, what)
        found[item.role] = scratch.place(inside, source)
    return found


def _check(item: DataPlan, path: Path, what: str) -> None:
    label = f"data:{item.role}"
    where = "where it was given" if item.override else f"where {what} read it"
    if not path.exists():
        raise ReproduceError(
            f"{label}: nothing at {path} ({where}): give its place now with {{data}} "
            f"{item.role}=PATH",
            params=("data",),
        )
    if item.location_sha256 is not None:
        actual = digest_location(path.resolve())
        expected = item.location_sha256
    else:
        actual = fingerprint_dataset(path).sha256
        expected = item.component.fingerprint
    if actual != expected:
        raise ReproduceError(
            f"{label} at {path} is not the data {what} used: its content has changed "
            f"(sha256 {str(actual)[:12]}, recorded {expected[:12]}); give the original with "
            f"{{data}} {item.role}=PATH",
            params=("data",),
        )

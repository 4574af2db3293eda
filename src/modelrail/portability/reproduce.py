"""``reproduce``: rebuild a model version (or a run) from its record and compare.

The recorded commit is checked out into a scratch ``git worktree``, the stored diff and
untracked files are put back, every dataset is checked at its recorded location (or where
the caller says it is now), the Python environment is the current one (when its packages
match) or a new one with the recorded versions, and the recorded entry point runs again
with its recorded arguments. Its new run is tagged as a reproduction of the original and
compared with it: component fingerprints, metrics within a tolerance, and both versions'
predictions on the test data. Whatever step cannot be done raises ``ReproduceError``
saying why; the scratch folder and worktree are removed either way unless kept.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelrail.entities import ModelVersion, Run
from modelrail.errors import (
    InvalidInputError,
    ModelNotFoundError,
    ReproduceError,
    RunNotFoundError,
)
from modelrail.portability.reproduce_compare import (
    DIFFERS,
    SKIPPED,
    ComparisonRow,
    compare_components,
    compare_metrics,
    compare_predictions,
)
from modelrail.portability.reproduce_data import check_data
from modelrail.portability.reproduce_env import (
    BuiltEnvironment,
    build_environment,
    check_installer,
    reuse_current,
)
from modelrail.portability.reproduce_plan import (
    REPRODUCTION_TAG,
    RebuildPlan,
    describe_left_out,
    plan_rebuild,
    relative_to_root,
)
from modelrail.portability.reproduce_worktree import Scratch, has_commit, repository_of
from modelrail.store.tracker_query import TrackerQuery

if TYPE_CHECKING:
    from modelrail.artifacts import ArtifactStore
    from modelrail.entities import TrackerPage
    from modelrail.registry import LoadedModel
    from modelrail.tracking.ports import RunWriter

__all__ = ["ReproduceHost", "ReproduceOptions", "ReproduceReport", "reproduce"]

_RUN_ID = re.compile(r"[0-9a-fA-F]{4,32}")
_TAIL_LINES = 12


class ReproduceHost(Protocol):
    """What reproducing reads and writes through the client."""

    @property
    def artifacts(self) -> ArtifactStore: ...

    @property
    def runs(self) -> RunWriter: ...

    def get_run(self, run_id: str) -> Run: ...

    def get_model_version(self, reference: str) -> ModelVersion: ...

    def load_model(self, reference: str) -> LoadedModel: ...

    def tracker(self, query: TrackerQuery | None = None) -> TrackerPage: ...


@dataclass(frozen=True)
class ReproduceOptions:
    reuse_env: bool = False
    find_links: tuple[str, ...] = ()
    use_index: bool = True
    installer: str = "auto"
    data: Mapping[str, str] = field(default_factory=dict)
    tolerance: float = 1e-9
    ignore_metrics: tuple[str, ...] = ()
    keep: bool = False
    repository: str | None = None


@dataclass(frozen=True)
class ReproduceReport:
    reference: str
    original_run: str
    rebuilt_run: str
    rows: tuple[ComparisonRow, ...]
    notes: tuple[str, ...]
    tolerance: float
    kept_at: str | None = None

    @property
    def reproduced(self) -> bool:
        return not self.differences

    @property
    def differences(self) -> list[str]:
        return [row.component for row in self.rows if row.result == DIFFERS]


def reproduce(
    host: ReproduceHost,
    reference: str,
    options: ReproduceOptions,
    *,
    rerun_settings: Mapping[str, str],
    progress: Callable[[str], None] = lambda _: None,
) -> ReproduceReport:
    """Rebuild ``reference`` (``churn:7``, ``churn@prod``, ``churn`` or a run id) and compare.

    ``rerun_settings``: the MODELRAIL_* variables that make the rerun record into the same
    store as ``host``."""
    if not options.tolerance >= 0:
        raise InvalidInputError(
            f"{{tolerance}} must be 0 or more, got {options.tolerance}", params=("tolerance",)
        )
    check_installer(options.installer)
    run, version = _resolve(host, reference)
    plan = plan_rebuild(run, options.data)
    repository = _repository(options.repository, plan)
    notes = list(describe_left_out(plan))
    what = f"run {run.short_id}"
    with Scratch(repository, keep=options.keep) as scratch:
        progress(f"checking out {plan.short_commit} into {scratch.code}")
        scratch.check_out(plan.commit, what)
        if plan.diff is not None:
            scratch.apply_diff(host.artifacts, plan.diff, what)
        if plan.untracked is not None:
            scratch.write_untracked(host.artifacts, plan.untracked, plan.untracked_files, what)
        data_paths = check_data(plan, scratch, notes, progress)
        environment = _environment(plan, options, scratch, progress)
        notes.extend(environment.notes)
        started = time.time()
        _rerun(plan, scratch, environment, rerun_settings, progress)
        rebuilt = _rerun_run(host, plan, scratch, started)
        host.runs.set_tags(rebuilt.id, {REPRODUCTION_TAG: run.id})
        progress(f"comparing run {rebuilt.short_id} with run {run.short_id}")
        rows = compare_components(run, rebuilt)
        rows += compare_metrics(run, rebuilt, options.tolerance, options.ignore_metrics)
        rows.append(_predictions(host, version, rebuilt, data_paths.get("test"), options))
        kept = str(scratch.root) if options.keep else None
    return ReproduceReport(
        reference=reference,
        original_run=run.id,
        rebuilt_run=rebuilt.id,
        rows=tuple(rows),
        notes=tuple(notes),
        tolerance=options.tolerance,
        kept_at=kept,
    )


def _resolve(host: ReproduceHost, reference: str) -> tuple[Run, ModelVersion | None]:
    text = reference.strip()
    if ":" not in text and "@" not in text and _RUN_ID.fullmatch(text):
        try:
            run = host.get_run(text)
        except RunNotFoundError:
            pass
        else:
            first = run.model_versions[0] if run.model_versions else None
            version = host.get_model_version(f"{first.model}:{first.version}") if first else None
            return run, version
    try:
        version = host.get_model_version(text)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(f"no model version or run is named {text!r}") from exc
    if version.run_id is None:
        raise ReproduceError(
            f"{version.model}:{version.version} was registered outside a run: "
            "nothing records how it was made"
        )
    return host.get_run(version.run_id), version


def _repository(given: str | None, plan: RebuildPlan) -> Path:
    """The repository named, else the one around the working folder, else the one the run
    was made in: the first of those two that holds the commit."""
    if given is not None:
        found = repository_of(Path(given))
        if found is None:
            raise InvalidInputError(
                f"{{repository}} {given} is not in a git repository", params=("repository",)
            )
        return found
    here = repository_of(Path.cwd())
    recorded = repository_of(Path(plan.repository_root)) if plan.repository_root else None
    for candidate in (here, recorded):
        if candidate is not None and has_commit(candidate, plan.commit):
            return candidate
    fallback = here or recorded
    if fallback is not None:
        return fallback  # checking the commit out says it is missing there
    raise ReproduceError(
        f"run {plan.run.short_id} was made in {plan.repository_root}, which is not a git "
        "repository here: run from a clone of it, or name one with {repository}",
        params=("repository",),
    )


def _environment(
    plan: RebuildPlan,
    options: ReproduceOptions,
    scratch: Scratch,
    progress: Callable[[str], None],
) -> BuiltEnvironment:
    def rebuilt_code(path: str) -> Path | None:
        relative = relative_to_root(path, plan.repository_root)
        return None if relative is None else scratch.code / relative

    if options.reuse_env:
        progress("checking the current environment against the recorded one")
        return reuse_current(plan.python_version, plan.packages, plan.local_packages, rebuilt_code)
    return build_environment(
        scratch.env,
        plan.python_version,
        plan.packages,
        plan.local_packages,
        rebuilt_code,
        find_links=options.find_links,
        use_index=options.use_index,
        installer=options.installer,
        progress=progress,
    )


def _rerun(
    plan: RebuildPlan,
    scratch: Scratch,
    environment: BuiltEnvironment,
    settings: Mapping[str, str],
    progress: Callable[[str], None],
) -> None:
    target = ["-m", plan.module] if plan.module else [str(scratch.code / (plan.script or ""))]
    command = [environment.python, *plan.interpreter_options, *target, *plan.arguments]
    env = {**os.environ, **settings}
    if environment.python_path:
        env["PYTHONPATH"] = os.pathsep.join(
            [*environment.python_path, *filter(None, [env.get("PYTHONPATH")])]
        )
    if environment.virtual_env is not None:
        env["VIRTUAL_ENV"] = environment.virtual_env
        env["PATH"] = os.pathsep.join([str(Path(environment.python).parent), env.get("PATH", "")])
    cwd = scratch.code / plan.cwd
    progress(f"running {' '.join(command[1:])} in {cwd}")
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise ReproduceError(f"cannot run {command[0]}: {exc}") from exc
    assert process.stdout is not None
    try:
        with process.stdout:
            for line in process.stdout:
                tail.append(line.rstrip("\n"))
                progress(f"| {tail[-1]}")
        code = process.wait()
    except BaseException:
        process.kill()  # interrupted: no rerun goes on writing into a worktree being removed
        process.wait()
        raise
    if code != 0:
        shown = "\n".join(tail)
        raise ReproduceError(
            f"the rerun of run {plan.run.short_id} failed (exit code {code}); "
            f"its last lines:\n{shown}"
        )


def _rerun_run(host: ReproduceHost, plan: RebuildPlan, scratch: Scratch, started: float) -> Run:
    """The run the rerun recorded: started since, in the scratch worktree; the one with the
    original's params when the script made several."""
    page = host.tracker(TrackerQuery(experiment=plan.run.experiment, sort="started", limit=100))
    seen: list[Run] = []
    code = str(scratch.code.resolve())
    for row in page.rows:
        if row.started_at < started - 1 or any(r.id == row.run_id for r in seen):
            continue
        candidate = host.get_run(row.run_id)
        entry = candidate.provenance.get("entry_point") or {}
        places = [str(entry.get("cwd") or ""), str(entry.get("script") or "")]
        if any(place == code or place.startswith(code + os.sep) for place in places):
            seen.append(candidate)
    if not seen:
        raise ReproduceError(
            f"the rerun finished but recorded no run in experiment {plan.run.experiment!r}"
        )
    original = plan.run.components.get("params")
    for candidate in sorted(seen, key=lambda r: r.started_at):
        params = candidate.components.get("params")
        if (
            original is not None
            and params is not None
            and params.fingerprint == original.fingerprint
        ):
            return candidate
    return min(seen, key=lambda r: r.started_at)


def _predictions(
    host: ReproduceHost,
    version: ModelVersion | None,
    rebuilt: Run,
    test_data: Path | None,
    options: ReproduceOptions,
) -> ComparisonRow:
    if version is None:
        return ComparisonRow("predictions", "-", "-", SKIPPED, "the run registered no model")
    made = next((m for m in rebuilt.model_versions if m.model == version.model), None)
    if made is None:
        return ComparisonRow(
            "predictions", f"{version.model}:{version.version}", "no version", DIFFERS,
            f"the rerun registered no version of {version.model}",
        )  # fmt: skip
    if test_data is None:
        return ComparisonRow(
            "predictions", "-", "-", SKIPPED, "no test data with a recorded location to score"
        )
    label = f"data:test ({test_data.name})"
    try:
        original = host.load_model(f"{version.model}:{version.version}")
        again = host.load_model(f"{made.model}:{made.version}")
        return compare_predictions(original, again, test_data, label, options.tolerance)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        return ComparisonRow("predictions", label, "-", SKIPPED, f"could not score it: {exc}")


def report_json(report: ReproduceReport) -> dict[str, Any]:
    return {
        "reference": report.reference,
        "reproduced": report.reproduced,
        "original_run": report.original_run,
        "rebuilt_run": report.rebuilt_run,
        "tolerance": report.tolerance,
        "differences": report.differences,
        "rows": [row.__dict__ for row in report.rows],
        "notes": list(report.notes),
        "kept_at": report.kept_at,
    }

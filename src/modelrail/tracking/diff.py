"""What changed between two runs: components, params, metrics and packages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelrail.entities import COMPONENT_ROLES, ComponentVersion, Run


@dataclass(frozen=True)
class ComponentChange:
    role: str
    before: str | None
    after: str | None
    note: str


@dataclass(frozen=True)
class ValueChange:
    key: str
    before: Any
    after: Any


@dataclass(frozen=True)
class RunDiff:
    run_a: Run
    run_b: Run
    components: tuple[ComponentChange, ...]
    params: tuple[ValueChange, ...]
    metrics: tuple[ValueChange, ...]
    packages: tuple[ValueChange, ...]

    @property
    def identical_inputs(self) -> bool:
        return not self.components and not self.params


def diff_runs(a: Run, b: Run) -> RunDiff:
    roles = [r for r in COMPONENT_ROLES if r in a.components or r in b.components]
    roles += sorted((set(a.components) | set(b.components)) - set(roles))
    components = []
    for role in roles:
        before, after = a.components.get(role), b.components.get(role)
        if before is not None and after is not None and before.id == after.id:
            continue
        components.append(
            ComponentChange(
                role=role,
                before=before.label if before else None,
                after=after.label if after else None,
                note=_describe(role, before, after),
            )
        )
    return RunDiff(
        run_a=a,
        run_b=b,
        components=tuple(components),
        params=_changes(a.params, b.params),
        metrics=_changes(a.metrics, b.metrics),
        packages=_changes(_packages(a), _packages(b)),
    )


def _changes(before: Any, after: Any) -> tuple[ValueChange, ...]:
    keys = sorted(set(before) | set(after))
    return tuple(
        ValueChange(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)
    )


def _packages(run: Run) -> dict[str, str]:
    env = run.components.get("environment")
    packages = env.details.get("packages", {}) if env else {}
    return dict(packages) if isinstance(packages, dict) else {}


def _describe(role: str, before: ComponentVersion | None, after: ComponentVersion | None) -> str:
    if before is None or after is None:
        return "only in one run"
    if before.lineage != after.lineage:
        return f"different lineage: {before.lineage} -> {after.lineage}"
    if before.shape_fingerprint != after.shape_fingerprint:
        return _shape_change(role, before, after)
    if role.startswith("data:"):
        rows_a, rows_b = before.details.get("rows"), after.details.get("rows")
        if rows_a != rows_b:
            return f"same schema, rows {rows_a} -> {rows_b}"
        return "same schema and row count, different values"
    if role == "code":
        commit_a, commit_b = before.details.get("commit"), after.details.get("commit")
        if commit_a != commit_b:
            return f"commit {str(commit_a)[:10]} -> {str(commit_b)[:10]}"
        return "same commit, different uncommitted changes or script"
    if role == "params":
        return "same keys, different values"
    return "different content"


def _shape_change(role: str, before: ComponentVersion, after: ComponentVersion) -> str:
    if role.startswith("data:"):
        cols_a = {c[0]: c[1] for c in before.details.get("schema", [])}
        cols_b = {c[0]: c[1] for c in after.details.get("schema", [])}
        added = sorted(set(cols_b) - set(cols_a))
        removed = sorted(set(cols_a) - set(cols_b))
        retyped = sorted(k for k in set(cols_a) & set(cols_b) if cols_a[k] != cols_b[k])
        parts = [
            f"{label} {', '.join(names)}"
            for label, names in (("added", added), ("removed", removed), ("retyped", retyped))
            if names
        ]
        return "schema changed: " + ("; ".join(parts) or "column order")
    if role == "code":
        return (
            f"architecture {before.details.get('architecture')} -> "
            f"{after.details.get('architecture')}"
        )
    if role == "params":
        keys_a, keys_b = set(before.details.get("keys", [])), set(after.details.get("keys", []))
        return f"keys added {sorted(keys_b - keys_a)}, removed {sorted(keys_a - keys_b)}"
    return f"python {before.details.get('python')} -> {after.details.get('python')}"

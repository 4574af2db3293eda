"""Gates: the checks a model version must pass to enter an environment.

Each gate reports pass or fail with the numbers behind it. Human approval is
not evaluated here: ``environments`` turns it into an approval request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from modelrail.artifacts import ArtifactStore
from modelrail.entities import GateResult, ModelVersion, Run
from modelrail.errors import ModelrailError
from modelrail.policy import GatePolicy


@dataclass(frozen=True)
class GateContext:
    candidate: ModelVersion
    candidate_run: Run | None
    incumbent: ModelVersion | None
    incumbent_run: Run | None
    previous_environment: str | None
    entered_previous_at: float | None
    seconds_in_previous: float
    primary_metric: str
    artifacts: ArtifactStore
    now: float


def evaluate(policy: GatePolicy, ctx: GateContext) -> tuple[GateResult, ...]:
    results: list[GateResult] = []
    results += _thresholds(policy, ctx)
    checks: list[tuple[bool, Callable[[GatePolicy, GateContext], GateResult]]] = [
        (policy.beat_incumbent, _beats_incumbent),
        (policy.signature_compatible, _signature_compatible),
        (policy.runtime_compatible, _runtime_compatible),
        (policy.min_hours_in_previous > 0, _time_in_previous),
        (policy.smoke_test, _smoke_test),
    ]
    results += [check(policy, ctx) for enabled, check in checks if enabled]
    return tuple(results)


def _metrics(ctx: GateContext) -> dict[str, float]:
    return dict(ctx.candidate_run.metrics) if ctx.candidate_run else {}


def _thresholds(policy: GatePolicy, ctx: GateContext) -> list[GateResult]:
    metrics = _metrics(ctx)
    results = []
    bounds = [("min", k, v) for k, v in policy.min_metrics.items()]
    bounds += [("max", k, v) for k, v in policy.max_metrics.items()]
    for kind, key, bound in bounds:
        name = f"{kind} {key} {'>=' if kind == 'min' else '<='} {bound:g}"
        value = metrics.get(key)
        if value is None:
            results.append(
                GateResult(name, False, f"version {ctx.candidate.version} has no metric {key!r}")
            )
            continue
        passed = value >= bound if kind == "min" else value <= bound
        results.append(GateResult(name, passed, f"{value:.4g}"))
    return results


def _beats_incumbent(policy: GatePolicy, ctx: GateContext) -> GateResult:
    key = ctx.primary_metric
    name = f"beats incumbent on {key}" + (f" by {policy.margin:g}" if policy.margin else "")
    if ctx.incumbent is None:
        return GateResult(name, True, "no version in place")
    candidate = _metrics(ctx).get(key)
    incumbent = ctx.incumbent_run.metrics.get(key) if ctx.incumbent_run else None
    if candidate is None or incumbent is None:
        lacking = ctx.candidate.version if candidate is None else ctx.incumbent.version
        return GateResult(name, False, f"version {lacking} has no metric {key!r}")
    test_a = _test_data(ctx.candidate_run)
    test_b = _test_data(ctx.incumbent_run)
    if test_a is None or test_b is None or test_a != test_b:
        return GateResult(
            name,
            False,
            f"not comparable: measured on different test data (version "
            f"{ctx.candidate.version}: test {test_a or 'not logged'}, version "
            f"{ctx.incumbent.version}: test {test_b or 'not logged'})",
        )
    # A tolerance so "beats by exactly the margin" is not lost to float rounding.
    passed = candidate >= incumbent + policy.margin - 1e-12
    return GateResult(
        name, passed, f"{candidate:.4g} vs {incumbent:.4g} (version {ctx.incumbent.version})"
    )


def _test_data(run: Run | None) -> str | None:
    component = run.components.get("data:test") if run else None
    return None if component is None else f"{component.lineage.split(':', 1)[1]} {component.label}"


def _signature_compatible(policy: GatePolicy, ctx: GateContext) -> GateResult:
    name = "signature compatible"
    if ctx.incumbent is None:
        return GateResult(
            name, True, f"{len(ctx.candidate.signature.inputs)} columns; no version in place"
        )
    new = {c.name: c.dtype for c in ctx.candidate.signature.inputs}
    old = {c.name: c.dtype for c in ctx.incumbent.signature.inputs}
    removed = sorted(set(old) - set(new))
    retyped = sorted(f"{k} {old[k]} -> {new[k]}" for k in set(old) & set(new) if old[k] != new[k])
    added = sorted(set(new) - set(old))
    if removed or retyped:
        parts = [f"removed {', '.join(removed)}"] if removed else []
        parts += [f"retyped {', '.join(retyped)}"] if retyped else []
        return GateResult(name, False, "; ".join(parts))
    detail = f"same {len(old)} columns" if not added else f"adds {', '.join(added)}"
    return GateResult(name, True, detail)


def _runtime_compatible(policy: GatePolicy, ctx: GateContext) -> GateResult:
    name = "runtime compatible"
    recorded = ctx.candidate.flavor_details.get("packages", {})
    mismatches = []
    for package, wanted in sorted(recorded.items()):
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != wanted:
            mismatches.append(f"{package} {wanted} recorded, {installed} here")
    if mismatches:
        return GateResult(name, False, "; ".join(mismatches))
    shown = ", ".join(f"{p} {v}" for p, v in sorted(recorded.items()))
    return GateResult(name, True, shown or "no key packages recorded")


def _time_in_previous(policy: GatePolicy, ctx: GateContext) -> GateResult:
    hours = policy.min_hours_in_previous
    name = f"at least {hours:g} h in {ctx.previous_environment or 'the previous environment'}"
    if ctx.previous_environment is None:
        return GateResult(name, True, "first environment")
    if ctx.entered_previous_at is None:
        return GateResult(name, False, f"never was in {ctx.previous_environment}")
    spent = ctx.seconds_in_previous / 3600
    return GateResult(name, spent >= hours, f"{spent:.2f} h there")


def _smoke_test(policy: GatePolicy, ctx: GateContext) -> GateResult:
    from modelrail.registry import load_model_version

    name = f"smoke test within {policy.smoke_latency_ms:g} ms"
    try:
        loaded = load_model_version(ctx.artifacts, ctx.candidate)
        example = loaded.input_example()
        loaded.predict(example)  # the first call pays one-off costs (imports, caches)
        started = time.perf_counter()
        predictions = loaded.predict(example)
        elapsed_ms = (time.perf_counter() - started) * 1000
    except ModelrailError as exc:
        return GateResult(name, False, exc.message)
    except Exception as exc:  # the user's model may raise anything while predicting
        return GateResult(
            name, False, f"predicting the input example failed: {type(exc).__name__}: {exc}"
        )
    if len(predictions) != len(example):
        return GateResult(name, False, f"{len(predictions)} predictions for {len(example)} rows")
    passed = elapsed_ms <= policy.smoke_latency_ms
    return GateResult(
        name, passed, f"sha256 verified, predicted {len(example)} rows in {elapsed_ms:.2f} ms"
    )

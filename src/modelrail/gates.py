"""Gates: the checks a model version must pass to enter an environment.

Each gate reports pass or fail with the numbers behind it. Human approval is
not evaluated here: ``environments`` turns it into an approval request.

The safe-format gate (an environment with ``allow_pickle = false``) runs first, and when it
fails the smoke test does not run: it would load the pickle, which is what the policy forbids.

The gates from live data (``min_live_requests``, ``max_live_drift``, ``live_beats_incumbent``)
judge the evidence ``environments`` gathers from the prediction logs
(``monitoring.evidence``), and only when one of them is on (``needs_live_evidence``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from modelrail.artifacts import ArtifactStore
from modelrail.entities import GateResult, ModelVersion, Run
from modelrail.errors import ModelrailError
from modelrail.policy import GatePolicy

if TYPE_CHECKING:
    from modelrail.monitoring.evidence import LiveEvidence, Traffic


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
    environment: str = ""
    # What the prediction logs show, gathered only when a gate from live data is on.
    live: LiveEvidence | None = None


SAFE_FORMAT = "safe format"


def evaluate(policy: GatePolicy, ctx: GateContext) -> tuple[GateResult, ...]:
    results: list[GateResult] = []
    safe = None if policy.allow_pickle else safe_format(ctx.candidate, ctx.environment)
    if safe is not None:
        results.append(safe)
    results += _thresholds(policy, ctx)
    checks: list[tuple[bool, Callable[[GatePolicy, GateContext], GateResult]]] = [
        (policy.beat_incumbent, _beats_incumbent),
        (policy.signature_compatible, _signature_compatible),
        (policy.runtime_compatible, _runtime_compatible),
        (policy.min_hours_in_previous > 0, _time_in_previous),
        (policy.min_live_requests > 0, _live_requests),
        (math.isfinite(policy.max_live_drift), _live_drift),
        (policy.live_beats_incumbent, _live_beats_incumbent),
        (policy.smoke_test, _smoke_test if safe is None or safe.passed else _not_loaded),
    ]
    results += [check(policy, ctx) for enabled, check in checks if enabled]
    return tuple(results)


PICKLE = "pickle"
SHIPPED_CODE = "shipped code"


def load_risk(version: ModelVersion) -> str | None:
    """What loading ``version`` runs besides its model library: ``PICKLE`` (any code: the
    version was saved with allow_pickle and is unsafe), ``SHIPPED_CODE`` (the source files
    that ship with it, sha256-checked), or None."""
    if version.flavor_details.get("unsafe"):
        return PICKLE
    return SHIPPED_CODE if version.flavor_details.get("runs_code") else None


def safe_format(version: ModelVersion, environment: str) -> GateResult:
    """Pass for a version whose loading runs no pickle (shipped code is named: it runs too,
    but as source that ships with the version); fail for one saved with ``allow_pickle``."""
    details = version.flavor_details
    shown = str(details.get("format") or version.flavor)
    risk = load_risk(version)
    if risk == PICKLE:
        where = f" in {environment}" if environment else ""
        return GateResult(
            SAFE_FORMAT, False, f"{shown} pickle: unsafe to load; allow_pickle = false{where}"
        )
    code = details.get("code")
    if risk == SHIPPED_CODE and isinstance(code, dict):
        files = sorted(code)
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        shown += f"; runs shipped code: {', '.join(files[:3])}{more}"
    return GateResult(SAFE_FORMAT, True, shown)


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
        installed = installed_version(package) or "not installed"
        if installed != wanted:
            mismatches.append(f"{package} {wanted} recorded, {installed} here")
    if mismatches:
        return GateResult(name, False, "; ".join(mismatches))
    shown = ", ".join(f"{p} {v}" for p, v in sorted(recorded.items()))
    return GateResult(name, True, shown or "no key packages recorded")


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or of another wheel that installs the same
    top-level module (``xgboost-cpu`` for ``xgboost``): flavors record the canonical name."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pass
    module = distribution.replace("-", "_")
    for alternative in metadata.packages_distributions().get(module, []):
        try:
            return metadata.version(alternative)
        except metadata.PackageNotFoundError:
            continue
    return None


def _time_in_previous(policy: GatePolicy, ctx: GateContext) -> GateResult:
    hours = policy.min_hours_in_previous
    name = f"at least {hours:g} h in {ctx.previous_environment or 'the previous environment'}"
    if ctx.previous_environment is None:
        return GateResult(name, True, "first environment")
    if ctx.entered_previous_at is None:
        return GateResult(name, False, f"never was in {ctx.previous_environment}")
    spent = ctx.seconds_in_previous / 3600
    return GateResult(name, spent >= hours, f"{spent:.2f} h there")


def needs_live_evidence(policy: GatePolicy) -> bool:
    """Whether a gate from live data is on (then the prediction logs are read)."""
    return (
        policy.min_live_requests > 0
        or math.isfinite(policy.max_live_drift)
        or policy.live_beats_incumbent
    )


def _where(ctx: GateContext) -> str:
    return ctx.previous_environment or ctx.environment


def _unreadable(live: LiveEvidence | None) -> str | None:
    """Why the logs say nothing at all (not read, none found, or one unreadable); None if
    they can."""
    if live is None:
        return "the prediction logs were not read"
    if live.problem is not None:
        return live.problem
    if live.logged:
        return None
    return (
        f"no prediction log of {live.model} in {live.root}: log its traffic (serve "
        "--log-predictions, or log_predictions in [environments.NAME.monitoring]); a team "
        "server reads only its own monitoring folder, so share [monitoring] root with the "
        "machines that serve"
    )


def _live_requests(policy: GatePolicy, ctx: GateContext) -> GateResult:
    name = f"at least {policy.min_live_requests:g} live requests in {_where(ctx)}"
    missing = _unreadable(ctx.live)
    if missing is not None:
        return GateResult(name, False, missing)
    assert ctx.live is not None
    traffic = ctx.live.candidate
    passed = traffic.requests >= policy.min_live_requests
    return GateResult(name, passed, _requests_detail(traffic))


def _requests_detail(traffic: Traffic) -> str:
    text = (
        f"{traffic.requests:,.0f} requests of version {traffic.version} in {traffic.where}"
        f" (estimated from {traffic.logged:,} logged at their sample rates"
    )
    if traffic.shadowed:
        text += f"; {traffic.shadowed:,.0f} as a shadow"
    return text + ")"


def _live_drift(policy: GatePolicy, ctx: GateContext) -> GateResult:
    name = f"live drift (PSI) <= {policy.max_live_drift:g} in {_where(ctx)}"
    missing = _unreadable(ctx.live)
    if missing is not None:
        return GateResult(name, False, missing)
    assert ctx.live is not None
    traffic = ctx.live.candidate
    if traffic.logged == 0:
        return GateResult(
            name, False, f"no logged traffic of version {traffic.version} in {traffic.where}"
        )
    if not traffic.profiled:
        return GateResult(
            name,
            False,
            f"version {traffic.version} has no reference profile of its data: its drift "
            "cannot be measured",
        )
    if traffic.drift is None:
        return GateResult(
            name,
            False,
            f"none of the logged inputs of version {traffic.version} is in its reference "
            "profile (every column excluded from logging?)",
        )
    passed = traffic.drift <= policy.max_live_drift
    return GateResult(
        name,
        passed,
        f"largest PSI {traffic.drift:.3g} ({traffic.drift_feature}) over "
        f"{traffic.compared} features and {traffic.requests:,.0f} requests",
    )


def _live_beats_incumbent(policy: GatePolicy, ctx: GateContext) -> GateResult:
    key = ctx.primary_metric
    live = ctx.live
    lower = live is not None and live.lower_is_better
    name = f"live {key} {'at most' if lower else 'at least'} the incumbent's"
    if ctx.incumbent is None:
        return GateResult(name, True, "no version in place")
    missing = _unreadable(live)
    if missing is not None:
        return GateResult(name, False, missing)
    assert live is not None
    ours, theirs = live.candidate, live.incumbent
    if theirs is None:  # gathered without the incumbent: cannot happen with one in place
        return GateResult(name, False, "the incumbent's traffic was not read")
    lacking = [t for t in (ours, theirs) if t.metric_value is None]
    if lacking:
        said = "; ".join(_unlabelled(t, key) for t in lacking)
        either = " (neither has labels)" if len(lacking) == 2 else ""
        return GateResult(name, False, said + either)
    assert ours.metric_value is not None and theirs.metric_value is not None
    if lower:
        passed = ours.metric_value <= theirs.metric_value + 1e-12
    else:
        passed = ours.metric_value >= theirs.metric_value - 1e-12
    return GateResult(
        name,
        passed,
        f"{ours.metric_value:.4g} on {ours.labelled:,} labelled (version {ours.version}) vs "
        f"{theirs.metric_value:.4g} on {theirs.labelled:,} labelled (version "
        f"{theirs.version} in {theirs.where})",
    )


def _unlabelled(traffic: Traffic, key: str) -> str:
    if traffic.labelled:
        return (
            f"{key} cannot be computed from the {traffic.labelled:,} labelled predictions "
            f"of version {traffic.version}"
        )
    return f"no labelled traffic of version {traffic.version} in {traffic.where}"


def _smoke_test(policy: GatePolicy, ctx: GateContext) -> GateResult:
    """Load the version as ``load_model`` does and as serving and batch scoring do (its
    stored compiled form, when it has one), each sha256-checked, and predict the input
    example through every one of them: a form production would refuse fails here."""
    from modelrail.registry import load_model_version
    from modelrail.rehearsal import as_served, through_conversions
    from modelrail.scoring.predictor import scoring_model_for

    name = _smoke_name(policy)
    rows = len(ctx.candidate.input_example.get("data", []))
    try:
        loaded = load_model_version(ctx.artifacts, ctx.candidate)
        example = loaded.input_example()
        model_ms = _timed(lambda: [loaded.predict(example)], rows)
    except Exception as exc:  # the user's model may raise anything while predicting
        return GateResult(name, False, _smoke_failure(exc, ""))
    try:
        scoring = scoring_model_for(ctx.artifacts, ctx.candidate)
    except Exception as exc:
        return GateResult(name, False, _smoke_failure(exc, "as served: "))
    try:
        served_ms = _timed(as_served(scoring), rows)
        _timed(through_conversions(scoring), rows)  # parsed as requests, and in batch
    except Exception as exc:  # the message names the path (as served, a JSON request ...)
        return GateResult(name, False, _smoke_failure(exc, ""))
    batch_failure = _batch_form_failure(ctx, scoring.predictor_kind, rows)
    if batch_failure is not None:
        return GateResult(name, False, batch_failure)
    passed = max(model_ms, served_ms) <= policy.smoke_latency_ms
    return GateResult(
        name,
        passed,
        f"sha256 verified, predicted {rows} rows in {model_ms:.2f} ms; "
        f"as served ({scoring.predictor_kind}) in {served_ms:.2f} ms",
    )


def _batch_form_failure(ctx: GateContext, one_row_kind: str, rows: int) -> str | None:
    """Batch scoring's own predictor form, when another form than serving's was chosen for
    it, loaded (sha256-checked) and taken through the batch scorer too."""
    from modelrail.rehearsal import through_conversions
    from modelrail.scoring.forms.record import BATCH, forms_record
    from modelrail.scoring.predictor import scoring_model_for

    record = forms_record(ctx.candidate)
    if record is None or record.chosen.get(BATCH) in (None, one_row_kind, "library"):
        return None
    try:
        batch = scoring_model_for(ctx.artifacts, ctx.candidate, BATCH)
        _timed(through_conversions(batch), rows)
    except Exception as exc:  # the message names the path
        return _smoke_failure(exc, "in batch: ")
    return None


def _not_loaded(policy: GatePolicy, ctx: GateContext) -> GateResult:
    return GateResult(_smoke_name(policy), False, "not run: loading it would run its pickle")


def _smoke_name(policy: GatePolicy) -> str:
    return f"smoke test within {policy.smoke_latency_ms:g} ms"


class _WrongCount(Exception):
    pass


def _timed(predict: Callable[[], list[Any]], rows: int) -> float:
    """Milliseconds of the second call: the first pays one-off costs (imports, caches)."""
    predict()
    started = time.perf_counter()
    outputs = predict()
    elapsed_ms = (time.perf_counter() - started) * 1000
    for predictions in outputs:
        if len(predictions) != rows:
            raise _WrongCount(f"{len(predictions)} predictions for {rows} rows")
    return elapsed_ms


def _smoke_failure(exc: Exception, form: str) -> str:
    if isinstance(exc, ModelrailError):
        return form + exc.message
    if isinstance(exc, _WrongCount):
        return form + str(exc)
    return f"{form}predicting the input example failed: {type(exc).__name__}: {exc}"


def verify_artifacts(artifacts: ArtifactStore, version: ModelVersion) -> None:
    """Refuse, with ``ArtifactIntegrityError``, a version whose model file or stored
    predictor forms no longer match the sha256 recorded for them."""
    artifacts.read_verified(
        version.artifact_sha256, size=version.artifact_size, label=version.reference
    )
    from modelrail.scoring.forms.record import stored_blobs

    for sha256, size, what in stored_blobs(version):
        artifacts.read_verified(sha256, size=size, label=f"{version.reference} {what}")

"""An active run: the object users log into inside ``with start_run(...) as run``."""

from __future__ import annotations

import contextvars
import json
import logging
import math
import numbers
import os
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from modelrail.entities import (
    DATA_ROLES,
    ArtifactRecord,
    ComponentVersion,
    MetricPoint,
    ModelVersion,
)
from modelrail.errors import InvalidInputError, InvalidMetricError, ModelrailError, RunStateError
from modelrail.store.codec import to_jsonable
from modelrail.tracking.components import data_component, params_component

if TYPE_CHECKING:
    from modelrail.monitoring.dataset_profiles import ProfiledDataset
    from modelrail.monitoring.reference import LoggedData
    from modelrail.tracking.ports import RunHost

log = logging.getLogger("modelrail")
# Where a logged dataset's profile is kept among the run's artifacts: PROFILES/<role>.json.
PROFILES = "modelrail/profiles"

# The run a ``with`` block opened in this thread or task, for ``modelrail.active_run()``.
current_run: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar(
    "modelrail_current_run", default=None
)


class ActiveRun:
    def __init__(self, client: RunHost, run_id: str, experiment: str) -> None:
        self.client = client
        self.id = run_id
        self.experiment = experiment
        self._params: dict[str, Any] = {}
        self._next_step: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ended = False
        self._token: contextvars.Token[ActiveRun | None] | None = None
        # The data logged per role, for the reference profile of a version this run
        # registers: kept for this process only, by reference (or its path).
        self._datasets: dict[str, LoggedData] = {}

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id[:8]} experiment={self.experiment!r}>"

    @property
    def params(self) -> dict[str, Any]:
        """The params logged so far, with their original types (ready for ``Model(**params)``)."""
        return dict(self._params)

    # -- params and metrics ---------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._require_open()
        if not isinstance(params, Mapping):
            raise InvalidInputError(f"log_params expects a mapping, got {type(params).__name__}")
        cleaned = {
            _key(k, "parameter"): to_jsonable(v, what=f"parameter {k!r}") for k, v in params.items()
        }
        self.client.runs.log_params(self.id, cleaned)
        self._params.update(cleaned)

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp: float | None = None
    ) -> None:
        """Log values; without ``step`` each key's series continues from its last step."""
        self._require_open()
        now = time.time() if timestamp is None else float(timestamp)
        points = []
        with self._lock:
            for key, value in metrics.items():
                name = _key(key, "metric")
                number = _metric_value(name, value)
                point_step = self._next_step.get(name, 0) if step is None else _step(name, step)
                self._next_step[name] = max(self._next_step.get(name, 0), point_step + 1)
                points.append(MetricPoint(name, number, point_step, now))
        if points:
            self.client.runs.log_metrics(self.id, points)

    def set_tag(self, key: str, value: str) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._require_open()
        self.client.runs.set_tags(self.id, {_key(k, "tag"): str(v) for k, v in tags.items()})

    # -- data -------------------------------------------------------------------------------

    def log_dataset(
        self,
        data: Any,
        *,
        role: str,
        name: str | None = None,
        source: str | os.PathLike[str] | None = None,
    ) -> ComponentVersion:
        """Fingerprint ``data`` and record it as this run's train, validation or test data.

        ``source``: where in-memory ``data`` was read from (a file, folder or URL), so that
        ``modelrail reproduce`` can find it and check it is unchanged; a path given as
        ``data`` is its own source. In the same pass the data is profiled (per column
        quantiles or category shares, ``monitoring.profiles``): the profile is stored with
        the run as ``modelrail/profiles/<role>.json``, and a version this run registers
        keeps its train and test profiles as its reference."""
        from modelrail.monitoring.dataset_profiles import fingerprint_and_profile
        from modelrail.tracking.sources import locate

        self._require_open()
        if role not in DATA_ROLES:
            raise InvalidInputError(f"dataset role {role!r} is not one of {', '.join(DATA_ROLES)}")
        dataset = _key(name or self.experiment, "dataset name")
        profiled = fingerprint_and_profile(data)
        location = None if source is None else locate(source)
        spec = data_component(role, dataset, profiled.fingerprint, location)
        component = self.client.runs.attach_component(self.id, spec)
        self._keep_dataset(role, data, profiled, component)
        return component

    def _keep_dataset(
        self, role: str, data: Any, profiled: ProfiledDataset, component: ComponentVersion
    ) -> None:
        from modelrail.monitoring.reference import LoggedData

        if profiled.profile is not None:
            self._log_bytes(profiled.profile.to_text().encode(), f"{PROFILES}/{role}.json")
        if isinstance(data, str | os.PathLike):  # resolved now: the working folder may change
            data = Path(os.fsdecode(data)).expanduser().resolve()
        label = f"{role} {component.label}"
        self._datasets[role] = LoggedData(data, profiled.profile, label, profiled.problem)

    # -- artifacts ---------------------------------------------------------------------------

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Store a file, or every file under a folder, with the run."""
        self._require_open()
        source = Path(path)
        if source.is_dir():
            prefix = artifact_path or source.name
            files = sorted(p for p in source.rglob("*") if p.is_file())
            pairs = [(f, f"{prefix}/{f.relative_to(source).as_posix()}") for f in files]
        elif source.is_file():
            pairs = [(source, artifact_path or source.name)]
        else:
            raise InvalidInputError(f"artifact {source} does not exist")
        records = []
        for file, name in pairs:
            blob = self.client.artifacts.put_file(file)
            records.append(ArtifactRecord(path=name, sha256=blob.sha256, size=blob.size))
        self.client.runs.add_artifacts(self.id, records)

    def log_text(self, text: str, name: str) -> None:
        self._log_bytes(text.encode("utf-8"), name)

    def log_dict(self, value: Mapping[str, Any], name: str) -> None:
        encoded = json.dumps(to_jsonable(dict(value), what=name), indent=2, sort_keys=True)
        self._log_bytes(encoded.encode("utf-8"), name)

    def log_figure(self, figure: Any, name: str) -> None:
        """Save a matplotlib figure (format from the name's suffix, PNG by default)."""
        savefig = getattr(figure, "savefig", None)
        if not callable(savefig):
            raise InvalidInputError(
                f"log_figure expects a matplotlib figure, got {type(figure).__name__}"
            )
        suffix = Path(name).suffix or ".png"
        with tempfile.TemporaryDirectory(prefix="modelrail-fig-") as tmp:
            target = Path(tmp) / f"figure{suffix}"
            savefig(target, bbox_inches="tight")
            self._log_bytes(target.read_bytes(), name if Path(name).suffix else f"{name}.png")

    def _log_bytes(self, data: bytes, name: str) -> None:
        self._require_open()
        blob = self.client.artifacts.put_bytes(data)
        self.client.runs.add_artifacts(self.id, [ArtifactRecord(name, blob.sha256, blob.size)])

    # -- models --------------------------------------------------------------------------------

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        input_example: Any = None,
        description: str = "",
        allow_pickle: bool | None = None,
        code_paths: Sequence[str | os.PathLike[str]] = (),
    ) -> ModelVersion:
        """Register ``model`` as the next version of ``name``, linked to this run.

        Each family is saved in its own format (see docs/models.md). ``code_paths`` ships the
        files that define a custom model's classes with the version; ``allow_pickle`` lets a
        model no flavor saves safely be pickled, which marks the version unsafe (None: the
        project's ``[models] allow_pickle``)."""
        self._require_open()
        options = self.client.save_options(allow_pickle, code_paths)
        version = self.client._register(model, name, self.id, input_example, description, options)
        self._record_reference(version, model)
        return version

    def _record_reference(self, version: ModelVersion, model: Any) -> None:
        """Keep the version's reference profile: the profiles of the data this run logged
        and its predictions on the test data. The version is registered whatever happens
        here: a failure is a warning."""
        if not self._datasets:
            return
        from modelrail.monitoring.reference import reference_profile

        profile = reference_profile(version, model, self._datasets)
        try:
            self.client.record_reference_profile(version.reference, profile)
        except ModelrailError as exc:
            log.warning(
                "modelrail: %s is registered, but its reference profile was not stored: %s",
                version.reference,
                exc.message,
            )

    # -- life cycle ----------------------------------------------------------------------------

    def end(self, status: str = "finished", error: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._datasets.clear()  # the data may be large: not held beyond the run
        spec = params_component(self.experiment, self._params)
        self.client.runs.end_run(
            self.id, status=status, ended_at=time.time(), error=error, components=[spec]
        )

    def __enter__(self) -> ActiveRun:
        self._token = current_run.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.end("finished")
            else:
                detail = "".join(traceback.format_exception_only(exc)).strip()
                self.end("failed", error=detail)
        finally:
            if self._token is not None:
                current_run.reset(self._token)
                self._token = None

    def _require_open(self) -> None:
        if self._ended:
            raise RunStateError(f"run {self.id[:8]} has ended; start a new run to log more")


def _key(key: object, what: str) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > 250:
        raise InvalidInputError(
            f"{what} name {key!r} must be a non-empty string of at most 250 characters"
        )
    return key


def _metric_value(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        item = getattr(value, "item", None)  # numpy scalars
        if callable(item) and getattr(value, "shape", None) == ():
            return _metric_value(key, item())
        raise InvalidMetricError(
            f"metric {key!r} must be a number, got {value!r} ({type(value).__name__})"
        )
    number = float(value)
    if not math.isfinite(number):
        raise InvalidMetricError(f"metric {key!r} must be finite, got {number}")
    return number


def _step(key: str, step: object) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or int(step) < 0:
        raise InvalidMetricError(
            f"step of metric {key!r} must be a whole number >= 0, got {step!r}"
        )
    return int(step)

"""The set of models a server answers with, and the watcher that swaps them.

The watcher polls the store for what the environment holds. A new version is
loaded, verified and compiled on the watcher's thread while requests keep being
answered by the old one; then one assignment replaces the whole mapping, so a
request sees either the old version or the new one, never a mix.

A version that fails to load (a damaged or missing artifact) is retried with a
growing, bounded back-off, and at once when the environment's holder changes: a
restored artifact, a rollback or a new promotion is picked up without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from modelrail.errors import ModelrailError
from modelrail.scoring.predictor import ScoringModel
from modelrail.serving.input_spec import InputSpec

log = logging.getLogger("modelrail.serving")


@dataclass(frozen=True)
class ServedModel:
    name: str
    environment: str | None
    scoring: ScoringModel
    since: float

    @cached_property
    def input_spec(self) -> InputSpec:
        """How request rows become this version's input (read once, on first use)."""
        return InputSpec.from_signature(self.scoring.version.signature)

    @property
    def version(self) -> int:
        return self.scoring.version.version


@dataclass
class ModelSet:
    """Copy-on-write: readers take ``current`` once per request."""

    current: Mapping[str, ServedModel] = field(default_factory=lambda: MappingProxyType({}))
    failures: dict[str, str] = field(default_factory=dict)
    expected: frozenset[str] = frozenset()

    def swap(self, model: ServedModel) -> None:
        updated = dict(self.current)
        updated[model.name] = model
        self.current = MappingProxyType(updated)
        self.failures.pop(model.name, None)

    def drop(self, name: str) -> None:
        updated = dict(self.current)
        updated.pop(name, None)
        self.current = MappingProxyType(updated)

    @property
    def ready(self) -> bool:
        return bool(self.current) and self.expected <= set(self.current) and not self.failures


# Returns {model name: version} the environment holds now.
HoldingsReader = Callable[[], dict[str, int]]
# Loads and verifies a version; raises ModelrailError when it cannot.
Loader = Callable[[str, int], ScoringModel]

# A version that failed to load is tried again after 1 s, then 2, 4, ... at most 30 s apart.
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0


@dataclass(frozen=True)
class _Refusal:
    version: int
    retry_at: float
    delay_s: float


# How long one long-poll of a team server waits: also how soon a stop is noticed.
LONG_POLL_S = 5.0


class Watcher:
    def __init__(
        self,
        models: ModelSet,
        environment: str,
        read_holdings: HoldingsReader,
        load: Loader,
        *,
        interval_s: float = 0.5,
        only: frozenset[str] | None = None,
        on_swap: Callable[[ServedModel], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait_for_change: Callable[[int, float], int] | None = None,
    ) -> None:
        """``wait_for_change(after, timeout_s)``: when given (a team server's client), the
        watcher long-polls it for the history to grow beyond the newest event it knows, and
        reads the holdings when it has, or when a wait is up; otherwise it reads the holdings
        every ``interval_s``."""
        self.wait_for_change = wait_for_change
        self.on_swap = on_swap
        self.models = models
        self.environment = environment
        self.read_holdings = read_holdings
        self.load = load
        self.interval_s = interval_s
        self.only = only
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refused: dict[str, _Refusal] = {}

    def refresh(self) -> None:
        """One poll: load whatever changed; keep the old version if the new one fails."""
        try:
            holdings = self.read_holdings()
        except ModelrailError as exc:
            log.warning("modelrail serve: cannot read %s from the store: %s", self.environment, exc)
            return
        if self.only is not None:
            holdings = {k: v for k, v in holdings.items() if k in self.only}
            self.models.expected = self.only
        else:
            self.models.expected = frozenset(holdings)
        for name, version in holdings.items():
            served = self.models.current.get(name)
            if served is not None and served.version == version:
                # What the environment holds is what answers (after a rollback, say).
                self._refused.pop(name, None)
                self.models.failures.pop(name, None)
                continue
            refusal = self._refused.get(name)
            if refusal is not None and refusal.version == version:
                if self.clock() < refusal.retry_at:
                    continue
            else:
                refusal = None  # another version than the one refused: try it at once
            self._load(name, version, refusal)
        for name in set(self._refused) - set(holdings):
            del self._refused[name]
        for name in set(self.models.failures) - set(holdings) - set(self.models.current):
            del self.models.failures[name]
        for name in set(self.models.current) - set(holdings):
            # The environment no longer holds this model: keep answering with the last
            # version rather than failing requests, and say so in /ready.
            self.models.failures[name] = f"{self.environment} no longer holds {name}"

    def _load(self, name: str, version: int, refusal: _Refusal | None) -> None:
        try:
            scoring = self.load(name, version)
        except ModelrailError as exc:
            delay = FIRST_RETRY_S if refusal is None else min(refusal.delay_s * 2, MAX_RETRY_S)
            self._refused[name] = _Refusal(version, self.clock() + delay, delay)
            self.models.failures[name] = f"version {version}: {exc.message}"
            log.error(
                "modelrail serve: not switching %s to version %s (trying again in %.0f s): %s",
                name,
                version,
                delay,
                exc,
            )
            return
        self._refused.pop(name, None)
        served = ServedModel(name, self.environment, scoring, time.time())
        self.models.swap(served)
        if self.on_swap is not None:
            self.on_swap(served)
        log.warning(
            "modelrail serve: %s@%s now answers with version %s", name, self.environment, version
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelrail-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # A long-poll in flight ends within its wait.
            self._thread.join(timeout=5 if self.wait_for_change is None else LONG_POLL_S + 5)

    def _run(self) -> None:
        if self.wait_for_change is not None:
            self._follow(self.wait_for_change)
            return
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception:  # never let the watcher die; the next poll tries again
                log.exception("modelrail serve: watcher poll failed")

    def _follow(self, wait_for_change: Callable[[int, float], int]) -> None:
        known: int | None = None  # first, where the history is now (no waiting)
        while not self._stop.is_set():
            try:
                if known is None:
                    newest = wait_for_change(0, 0.0)
                else:
                    newest = wait_for_change(known, LONG_POLL_S)
            except Exception as exc:  # the server is away: try again after a pause
                log.warning("modelrail serve: cannot follow %s: %s", self.environment, exc)
                self._stop.wait(self.interval_s * 4)
                continue
            if self._stop.is_set():
                return
            known = newest
            try:
                self.refresh()  # a change, or a wait that is up (refused loads retry then)
            except Exception:
                log.exception("modelrail serve: watcher poll failed")

"""The watcher retries a version that failed to load with a bounded back-off (time is the
only thing faked here), and tries a newly held version at once."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from modelrail.errors import ArtifactIntegrityError
from modelrail.serving.models import MAX_RETRY_S, ModelSet, Watcher


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _watcher(holdings: dict[str, int], attempts: list[float], clock: _Clock) -> Watcher:
    def load(name: str, version: int) -> Any:
        attempts.append(clock.now)
        raise ArtifactIntegrityError(f"artifact of {name}:{version} is damaged")

    return Watcher(ModelSet(), "prod", lambda: dict(holdings), load, clock=clock)


def test_a_refused_version_is_retried_ever_less_often_up_to_the_bound() -> None:
    clock, attempts = _Clock(), []
    watcher = _watcher({"churn": 2}, attempts, clock)
    for _ in range(2000):  # 500 s of polls every 0.25 s
        watcher.refresh()
        clock.now += 0.25
    gaps = [round(b - a, 2) for a, b in pairwise(attempts)]
    assert gaps[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert max(gaps) == MAX_RETRY_S and gaps[-1] == MAX_RETRY_S
    assert "version 2" in watcher.models.failures["churn"]
    assert not watcher.models.ready


def test_a_new_holder_is_tried_at_once_and_a_dropped_model_forgets_its_failure() -> None:
    clock, attempts = _Clock(), []
    holdings = {"churn": 2}
    watcher = _watcher(holdings, attempts, clock)
    watcher.refresh()
    watcher.refresh()
    assert len(attempts) == 1  # waiting for the back-off
    holdings["churn"] = 3
    watcher.refresh()
    assert len(attempts) == 2 and "version 3" in watcher.models.failures["churn"]
    holdings.clear()
    watcher.refresh()
    assert watcher.models.failures == {}

"""The workload both tracking workers log, so modelrail and MLflow store the same values.

Standard library only: it is imported by the worker running in modelrail's
virtualenv and by the one running in MLflow's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

EXPERIMENT = "bench"
OPTIMIZERS = ("adam", "sgd", "rmsprop")


def params_for(i: int) -> dict[str, object]:
    """Ten hyperparameters of run ``i``, of mixed types as a training script would log."""
    return {
        "learning_rate": 0.001 * (1 + i % 7),
        "batch_size": 32 * (1 + i % 4),
        "epochs": 10 + i % 5,
        "optimizer": OPTIMIZERS[i % 3],
        "dropout": 0.1 * (i % 5),
        "layers": 2 + i % 3,
        "hidden_units": 64 * (1 + i % 8),
        "weight_decay": 1e-4 * (1 + i % 3),
        "seed": i,
        "model": "mlp",
    }


def metrics_for(i: int) -> dict[str, float]:
    """Five final metrics of run ``i``."""
    base = (i * 7919) % 1000 / 1000.0
    return {
        "accuracy": 0.5 + base / 2,
        "loss": 1.0 - base / 2,
        "f1": 0.4 + base / 2,
        "precision": 0.45 + base / 2,
        "recall": 0.42 + base / 2,
    }


def loss_at(step: int) -> float:
    return 1.0 / (1.0 + step)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def timed_each(indices: range, action: Callable[[int], None]) -> float:
    """Seconds taken by ``action(i)`` for every ``i`` in ``indices``."""
    start = time.perf_counter()
    for i in indices:
        action(i)
    return time.perf_counter() - start


def usage(worker: str) -> str:
    return f"usage: {worker} log_metric|create_runs|populate|query WORKDIR COUNT"


def parse_args(worker: str) -> tuple[str, str, int]:
    if len(sys.argv) != 4:
        raise SystemExit(usage(worker))
    scenario, workdir, count = sys.argv[1:]
    return scenario, workdir, int(count)

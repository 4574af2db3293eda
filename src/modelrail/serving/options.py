"""What ``modelrail serve`` is asked to serve, and how (one value, passed to each worker
process as JSON)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServeOptions"]


@dataclass(frozen=True)
class ServeOptions:
    environment: str | None = None
    references: tuple[str, ...] = ()  # fixed versions, e.g. "pets-classifier:7"
    bundle: str | None = None  # a folder written by modelrail.bundle (no store needed)
    only: tuple[str, ...] = ()  # with an environment: serve just these models
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    wait: bool = False
    shadow: str | None = None
    poll_interval_s: float = 0.5
    max_rows: int = 10_000
    max_body_bytes: int = 16 * 1024 * 1024
    auth: bool = False  # predictions need a token of a user with a role in the environment
    metrics_auth: bool = False  # /metrics too
    # The share of requests whose inputs and answers are logged (0..1); None: the
    # environment's [environments.NAME.monitoring] log_predictions.
    log_predictions: float | None = None
    # Where a bundle's server writes its prediction log and labels (a server of a project
    # uses the project's monitoring folder); None: a bundle logs nothing.
    monitoring_root: str | None = None
    log_queue_rows: int = 50_000  # rows waiting for the log's writer, at most (then dropped)
    log_file_rows: int = 50_000  # a log file is written when a model has this many rows ...
    log_file_seconds: float = 10.0  # ... or its oldest row waited this long
    log_collect_every_s: float = 0.25  # how often the writer takes what requests handed over

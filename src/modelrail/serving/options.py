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

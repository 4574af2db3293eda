"""modelrail: version everything that produced a model, promote it through
environments with gates, and deploy it in batch or real time.

The import stays light: heavy parts (SQLAlchemy, pandas, scikit-learn) load on
first use so ``import modelrail`` costs little in scripts and servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelrail import errors
from modelrail.refs import Ref

if TYPE_CHECKING:
    from modelrail.client import Client
    from modelrail.registry import LoadedModel
    from modelrail.tracking.run import ActiveRun

__version__ = "0.1.0"

__all__ = [
    "ActiveRun",
    "Client",
    "LoadedModel",
    "Ref",
    "__version__",
    "active_run",
    "errors",
    "load_model",
    "start_run",
]


def start_run(
    experiment: str = "default",
    *,
    architecture: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    client: Client | None = None,
) -> ActiveRun:
    """Start a run in the project around the working directory (or in ``client``'s store)."""
    from modelrail.client import default_client

    chosen = client or default_client()
    return chosen.start_run(experiment, architecture=architecture, name=name, tags=tags)


def active_run() -> ActiveRun | None:
    """The run opened by the innermost ``with start_run(...)`` in this thread, if any."""
    from modelrail.tracking.run import current_run

    return current_run.get()


def load_model(reference: str, *, client: Client | None = None) -> LoadedModel:
    """Load ``name``, ``name:VERSION`` or ``name@ENV``, verified against its sha256."""
    from modelrail.client import default_client

    return (client or default_client()).load_model(reference)


def __getattr__(name: str) -> Any:
    if name == "Client":
        from modelrail.client import Client

        return Client
    if name == "ActiveRun":
        from modelrail.tracking.run import ActiveRun

        return ActiveRun
    if name == "LoadedModel":
        from modelrail.registry import LoadedModel

        return LoadedModel
    raise AttributeError(f"module 'modelrail' has no attribute {name!r}")

"""Settings: ``MODELRAIL_*`` environment variables over ``modelrail.toml`` over defaults.

Settings are read once at the edge (CLI command, ``Client()`` without arguments,
app factory) and passed down; nothing below this module reads the environment.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelrail.errors import ConfigError
from modelrail.policy import PromotionPolicy, default_policy, parse_policy

PROJECT_DIR_NAME = ".modelrail"
CONFIG_FILE_NAME = "modelrail.toml"
DATABASE_FILE_NAME = "modelrail.db"
ARTIFACTS_DIR_NAME = "artifacts"
MONITORING_DIR_NAME = "monitoring"

_KNOWN_KEYS: Mapping[str, frozenset[str]] = {
    "store": frozenset({"url"}),
    "artifacts": frozenset({"root", "cache"}),
    "identity": frozenset({"user"}),
    "models": frozenset({"allow_pickle"}),
    "ui": frozenset({"public_name"}),
    "server": frozenset({"url"}),
    "monitoring": frozenset({"root"}),
}


# Settings that are true or false (kept as "true" / "" beside the text settings).
_FLAGS = frozenset({("models", "allow_pickle")})


@dataclass(frozen=True)
class Settings:
    project_root: Path
    store_url: str
    artifact_root: str
    user: str
    created_project: bool = False
    policy: PromotionPolicy = field(default_factory=default_policy)
    # Where files of an object-store artifact root are kept locally (None: the user's cache).
    artifact_cache: str | None = None
    # Names the dashboard is reached by besides its own addresses (see modelrail.ui.guard).
    ui_public_name: str | None = None
    # Models no flavor saves safely are pickled without log_model(..., allow_pickle=True).
    allow_pickle: bool = False
    # The team server commands talk to (MODELRAIL_SERVER, [server] url); "" says none even
    # where a login would name one, None that nothing here says.
    server_url: str | None = None
    # Whether modelrail.toml (or MODELRAIL_CHAIN) says anything about the environments.
    policy_declared: bool = False
    # Where prediction logs, labels and monitoring checks are kept (None: .modelrail/monitoring).
    monitoring_root: str | None = None

    @property
    def monitoring_folder(self) -> str:
        return self.monitoring_root or str(self.project_dir / MONITORING_DIR_NAME)

    @property
    def project_dir(self) -> Path:
        return self.project_root / PROJECT_DIR_NAME


def find_project_root(start: Path) -> Path | None:
    """Walk up from ``start`` like git does and return the folder holding ``.modelrail/``."""
    current = start.resolve()
    for folder in (current, *current.parents):
        if (folder / PROJECT_DIR_NAME).is_dir():
            return folder
    return None


def init_project(root: Path) -> Path:
    """Create ``.modelrail/`` and a commented ``modelrail.toml`` in ``root``; idempotent."""
    project_dir = root / PROJECT_DIR_NAME
    project_dir.mkdir(parents=True, exist_ok=True)
    (project_dir / ARTIFACTS_DIR_NAME).mkdir(exist_ok=True)
    gitignore = project_dir / ".gitignore"
    if not gitignore.exists():
        # The store and artifacts are data, not source: keep them out of the user's commits.
        gitignore.write_text("*\n", encoding="utf-8")
    config = root / CONFIG_FILE_NAME
    if not config.exists():
        config.write_text(_DEFAULT_CONFIG, encoding="utf-8")
    return project_dir


def load_settings(
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    create: bool = True,
) -> Settings:
    """Resolve settings for the project containing ``cwd``.

    Without a project above ``cwd`` and without ``MODELRAIL_STORE``, a project is
    created in ``cwd`` when ``create`` is true (the caller tells the user so).
    """
    env = os.environ if environ is None else environ
    start = Path.cwd() if cwd is None else cwd
    home = env.get("MODELRAIL_HOME")
    root = Path(home).resolve() if home else find_project_root(start)
    created = False
    if root is None:
        root = start.resolve()
        if create and "MODELRAIL_STORE" not in env:
            init_project(root)
            created = True
    file_values, document, text = _read_config(root / CONFIG_FILE_NAME)
    default_db = root / PROJECT_DIR_NAME / DATABASE_FILE_NAME
    store_url = (
        env.get("MODELRAIL_STORE")
        or file_values.get(("store", "url"))
        or f"sqlite:///{default_db.as_posix()}"
    )
    artifact_root = (
        env.get("MODELRAIL_ARTIFACTS")
        or file_values.get(("artifacts", "root"))
        or str(root / PROJECT_DIR_NAME / ARTIFACTS_DIR_NAME)
    )
    artifact_cache = env.get("MODELRAIL_ARTIFACT_CACHE") or file_values.get(("artifacts", "cache"))
    user = env.get("MODELRAIL_USER") or file_values.get(("identity", "user")) or _os_user()
    ui_public_name = env.get("MODELRAIL_UI_PUBLIC_NAME") or file_values.get(("ui", "public_name"))
    allow_pickle = _flag(env, "MODELRAIL_ALLOW_PICKLE", file_values.get(("models", "allow_pickle")))
    policy = parse_policy(document.get("environments"), root / CONFIG_FILE_NAME, text, env)
    server_url = env.get("MODELRAIL_SERVER", file_values.get(("server", "url")))
    return Settings(
        project_root=root,
        store_url=store_url,
        artifact_root=artifact_root,
        artifact_cache=artifact_cache,
        user=user,
        created_project=created,
        policy=policy,
        ui_public_name=ui_public_name,
        allow_pickle=allow_pickle,
        server_url=None if server_url is None else server_url.strip(),
        policy_declared="environments" in document or bool(env.get("MODELRAIL_CHAIN")),
        monitoring_root=env.get("MODELRAIL_MONITORING_ROOT")
        or file_values.get(("monitoring", "root")),
    )


def _flag(env: Mapping[str, str], variable: str, from_file: str | None) -> bool:
    value = env.get(variable)
    if value is None:
        return bool(from_file)
    if value.strip().lower() in ("1", "true", "yes"):
        return True
    if value.strip().lower() in ("", "0", "false", "no"):
        return False
    raise ConfigError(f"environment variable {variable}={value!r}: must be true or false")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # Containers often run as a uid with no passwd entry.
        return f"uid-{os.getuid()}"


def _read_config(path: Path) -> tuple[dict[tuple[str, str], str], dict[str, Any], str]:
    if not path.is_file():
        return {}, {}, ""
    text = read_config_text(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per level of nested arrays/tables
        raise ConfigError(f"{path}: values are nested too deeply to be settings") from exc
    values: dict[tuple[str, str], str] = {}
    for section, body in document.items():
        if section == "environments":
            continue  # parsed by modelrail.policy
        if section not in _KNOWN_KEYS or not isinstance(body, dict):
            line = _line_of(text, f"[{section}")
            raise ConfigError(f"{path}:{line}: unknown section [{section}]")
        for key, value in body.items():
            if key not in _KNOWN_KEYS[section]:
                line = _line_of(text, key)
                raise ConfigError(f"{path}:{line}: unknown key '{key}' in [{section}]")
            if (section, key) in _FLAGS:
                if not isinstance(value, bool):
                    line = _line_of(text, key)
                    raise ConfigError(f"{path}:{line}: [{section}] {key} must be true or false")
                values[(section, key)] = "true" if value else ""
                continue
            if not isinstance(value, str):
                line = _line_of(text, key)
                raise ConfigError(f"{path}:{line}: [{section}] {key} must be a string")
            values[(section, key)] = value
    return values, document, text


def read_config_text(path: Path) -> str:
    """The text of a settings file; one that is not UTF-8 is refused naming its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8"
        ) from exc


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith(needle):
            return number
    return 1


_DEFAULT_CONFIG = """\
# modelrail project settings. Environment variables MODELRAIL_* override this file.

[store]
# Metadata database. Default: SQLite in .modelrail/modelrail.db.
# A team shares one PostgreSQL server:
# url = "postgresql+psycopg://user@db.example.org/modelrail"

[artifacts]
# Where model files and run artifacts are kept, content-addressed by sha256: a folder, or
# an object store such as "s3://bucket/prefix" (credentials and AWS_ENDPOINT_URL as for AWS).
# root = "/shared/modelrail-artifacts"
# Where files from an object store are cached on this machine. Default: ~/.cache/modelrail/artifacts
# cache = "/var/cache/modelrail"

[identity]
# Who you are in the audit history. Default: the operating-system user.
# user = "alice"

[server]
# A team server (modelrail server) that holds this project's records instead of the store
# above; sign in with 'modelrail login URL'. MODELRAIL_SERVER overrides it ("" for none).
# url = "https://models.example.org"

[monitoring]
# Where served predictions, their labels and monitoring checks are kept (Parquet and JSON files).
# Default: .modelrail/monitoring. What is logged and for how long: [environments.NAME.monitoring].
# root = "/shared/modelrail-monitoring"

[models]
# Models no flavor saves safely (see docs/models.md) are pickled only when you allow it, here for
# the whole project or per model with log_model(..., allow_pickle=True). Loading a pickle can run
# any code: such versions are marked unsafe, and prod refuses them (allow_pickle in [environments]).
# allow_pickle = false

[environments]
# The working environments a model version moves through, in order.
chain = ["dev", "staging", "prod"]
# New versions land in the first environment as soon as they are logged.
auto_enter_first = true
# The metric the "beat_incumbent" gate compares (larger is better).
primary_metric = "accuracy"
# Told about every change of what an environment holds (JSON on stdin / POST body):
# notify_command = "./deploy-hook.sh"
# notify_url = "http://127.0.0.1:9000/hooks/modelrail"

# Gates, per environment. New versions enter the first environment without gates
# (a promotion into it smoke-tests); later ones also need the version to have been in
# the one before and a compatible signature; the last one also needs matching package
# versions and a human approval.
# [environments.staging]
# min = { accuracy = 0.85 }              # metric thresholds
# max = { false_positive_rate = 0.1 }
# beat_incumbent = true                   # primary metric >= the version in place + margin
# margin = 0.0
# smoke_latency_ms = 500                  # the input example must predict this fast
# min_hours_in_previous = 0               # time the version must have spent in dev

[environments.prod]
approval = true                           # someone other than the requester approves
approval_expires_hours = 72
runtime_compatible = true                 # scikit-learn / numpy versions match this runtime

# [environments.prod.settings]
# batch_output = "postgresql+psycopg://analytics@db/scores"
# serving_port = 8080
"""

"""Docker images that serve a model version or what an environment holds.

The build context holds a Dockerfile on an official slim Python image, the
requirements pinned to the versions the model was trained with (its recorded
environment), modelrail itself as a wheel, and a serving bundle with the
verified artifacts, so the image needs no access to the store.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from modelrail.bundle import BundledModel, write_bundle
from modelrail.client import Client
from modelrail.entities import ModelVersion
from modelrail.errors import DockerBuildError, InvalidInputError
from modelrail.refs import Ref

DEFAULT_BASE_IMAGE = "python:3.11-slim"
PORT = 8080
# modelrail's own runtime needs, pinned to what the model was trained with where recorded.
_RUNTIME = (
    "sqlalchemy", "alembic", "typer", "rich", "numpy", "pandas", "pyarrow", "scikit-learn",
    "skops", "joblib", "orjson", "uvicorn", "uvloop", "httptools", "prometheus-client",
)  # fmt: skip


_CPU_WHEELS = {"xgboost": "xgboost-cpu"}
# Predictor forms that need a runtime of their own -> its distribution.
_FORM_RUNTIMES = {"onnxruntime": "onnxruntime", "treelite": "treelite"}


@dataclass(frozen=True)
class BuildContext:
    path: Path
    models: tuple[BundledModel, ...]
    requirements: tuple[str, ...]


def write_context(
    client: Client,
    dest: Path,
    *,
    reference: str | None = None,
    environment: str | None = None,
    base_image: str = DEFAULT_BASE_IMAGE,
) -> BuildContext:
    models = _models(client, reference, environment)
    if dest.exists() and any(dest.iterdir()):
        raise InvalidInputError(f"context folder {dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    write_bundle(client.artifacts, list(models), dest / "bundle")
    requirements = _requirements(client, models)
    (dest / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    wheel = _modelrail_wheel(dest / "wheels")
    (dest / "Dockerfile").write_text(_dockerfile(base_image, wheel.name), encoding="utf-8")
    (dest / ".dockerignore").write_text("**/__pycache__\n", encoding="utf-8")
    return BuildContext(dest, models, requirements)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def docker_build(context: Path, tag: str) -> None:
    done = subprocess.run(["docker", "build", "--force-rm", "-t", tag, str(context)], check=False)
    if done.returncode != 0:
        raise DockerBuildError(f"docker build of {context} failed (exit {done.returncode})")


def _models(
    client: Client, reference: str | None, environment: str | None
) -> tuple[BundledModel, ...]:
    if (reference is None) == (environment is None):
        raise InvalidInputError(
            "give either a model reference or an {environment}", params=("environment",)
        )
    if reference is not None:
        ref = Ref.parse(reference)
        policy = client.policy.environment(ref.environment).monitoring if ref.environment else None
        return (BundledModel(client.get_model_version(ref), ref.environment, policy),)
    assert environment is not None
    policy = client.policy.environment(environment).monitoring
    held = [h for h in client.board() if h.environment == environment]
    if not held:
        raise InvalidInputError(f"{environment} holds no model: nothing to put in an image")
    return tuple(
        BundledModel(client.get_model_version(Ref(h.model, h.version)), environment, policy)
        for h in held
    )


def _requirements(client: Client, models: tuple[BundledModel, ...]) -> tuple[str, ...]:
    """modelrail's runtime plus what each model's flavor needs to predict (xgboost,
    lightgbm, statsmodels, onnxruntime ...), pinned to the versions it was saved with."""
    recorded: dict[str, str] = {}
    needed: list[str] = []
    for item in models:
        if item.version.run_id:
            env = client.get_run(item.version.run_id).components.get("environment")
            if env is not None:
                recorded.update(env.details.get("packages", {}))
        flavor_packages = item.version.flavor_details.get("packages", {})
        recorded.update(flavor_packages)
        # The runtimes of its stored predictor forms (ONNX Runtime, Treelite), so the image
        # scores with the form chosen at registration and not with the library itself.
        form_runtimes = [_FORM_RUNTIMES[kind] for kind in _form_kinds(item.version)]
        needed.extend(
            p for p in (*flavor_packages, *form_runtimes) if p not in _RUNTIME and p not in needed
        )
    pins = []
    for package in (*_RUNTIME, *needed):
        # The image runs on CPUs: XGBoost's CPU wheel is the same module without CUDA's NCCL
        # (hundreds of MB).
        name = _CPU_WHEELS.get(package, package)
        version = recorded.get(package)
        if version is None:
            try:
                version = metadata.version(package)
            except metadata.PackageNotFoundError:
                continue
        pins.append(f"{name}=={version}")
    return tuple(pins)


def _form_kinds(version: ModelVersion) -> list[str]:
    from modelrail.scoring.forms.record import stored_blobs

    kinds = [what.removesuffix(" form") for _, _, what in stored_blobs(version)]
    return [kind for kind in kinds if kind in _FORM_RUNTIMES]


def _modelrail_wheel(folder: Path) -> Path:
    """Build modelrail's wheel from the installed package's source tree."""
    import modelrail

    package = Path(modelrail.__file__).resolve().parent
    project = package.parent.parent
    if not (project / "pyproject.toml").is_file():
        raise DockerBuildError(
            f"cannot find modelrail's source tree above {package} to build its wheel"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modelrail-wheel-") as scratch:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps",
             "--wheel-dir", scratch, str(project)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise DockerBuildError(f"building modelrail's wheel failed: {done.stderr[-500:]}")
        (wheel,) = Path(scratch).glob("modelrail-*.whl")
        return Path(shutil.copy2(wheel, folder / wheel.name))


def _dockerfile(base_image: str, wheel: str) -> str:
    return f"""\
# Written by `modelrail docker build`: serves the models in bundle/ on port {PORT}.
FROM {base_image}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 modelrail
WORKDIR /app
COPY requirements.txt /app/requirements.txt
RUN python -m pip install --no-cache-dir -r /app/requirements.txt
COPY wheels/{wheel} /app/wheels/{wheel}
RUN python -m pip install --no-cache-dir --no-deps /app/wheels/{wheel}
COPY bundle/ /app/bundle/
USER modelrail
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \\
  CMD ["python", "-c", "{_HEALTH_PROBE}"]
ENTRYPOINT ["modelrail", "serve", "--bundle", "/app/bundle", "--host", "0.0.0.0", \\
            "--port", "{PORT}"]
"""


_HEALTH_PROBE = (
    "import sys, urllib.request; "
    f"sys.exit(urllib.request.urlopen('http://127.0.0.1:{PORT}/health', timeout=2).status != 200)"
)

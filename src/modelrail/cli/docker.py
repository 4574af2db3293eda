"""``modelrail docker build``: an image that serves a version or an environment."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from modelrail.cli.context import open_client
from modelrail.cli.render import console
from modelrail.errors import DockerBuildError

app = typer.Typer(help="Container images that serve models.")


@app.command("build")
def build(
    reference: Annotated[
        str | None, typer.Argument(help="NAME:VERSION or NAME@ENV to put in the image.")
    ] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", help="Put every model this environment holds in the image."),
    ] = None,
    tag: Annotated[str | None, typer.Option("-t", "--tag", help="Image tag.")] = None,
    base_image: Annotated[
        str, typer.Option(help="Base image with Python 3.11+ and pip.")
    ] = "python:3.11-slim",
    context_only: Annotated[
        Path | None,
        typer.Option(help="Write the build context to this folder and do not run docker."),
    ] = None,
) -> None:
    """Write a Docker build context (Dockerfile, pinned requirements, modelrail's wheel,
    verified artifacts) and build it when a Docker daemon is reachable."""
    from modelrail.container import docker_available, docker_build, write_context

    target = context_only or Path(tempfile.mkdtemp(prefix="modelrail-image-"))
    with open_client() as client:
        context = write_context(
            client, target, reference=reference, environment=env, base_image=base_image
        )
    out = console()
    served = ", ".join(f"{m.version.model}:{m.version.version}" for m in context.models)
    out.print(f"build context for {served} written to {context.path}")
    if context_only is not None:
        return
    if not docker_available():
        if tag is not None:
            raise DockerBuildError(
                f"no Docker daemon is reachable, so image {tag} was not built; the context "
                f"is in {context.path}"
            )
        out.print(
            "no Docker daemon is reachable: the context is left in "
            f"{context.path}; build it with: docker build -t TAG {context.path}"
        )
        return
    image = (
        tag or f"modelrail-{context.models[0].version.model}:{context.models[0].version.version}"
    )
    docker_build(context.path, image)  # raises on failure: the context stays for a look
    shutil.rmtree(context.path, ignore_errors=True)
    out.print(f"built image {image}: docker run -p 127.0.0.1:8080:8080 {image}")

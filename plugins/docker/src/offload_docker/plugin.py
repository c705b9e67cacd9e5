"""The plugin module named by the ``offload.backends`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import offload
from offload_docker.backend import DockerBackend


@offload.hookimpl
def offload_register_backends(register: Callable[[type[offload.Backend]], None]) -> None:
    register(DockerBackend)


@offload.hookimpl
def offload_build_image(spec: offload.ImageSpec, dockerfile: str, tag: str, log: Callable[[str], None], engine: Any, options: Any) -> str | None:
    """Build on ``engine`` (the ``docker.DockerClient`` of the task being prepared) with
    ``options`` (its parsed ``BuildOptions``).

    Called by someone else than offload-docker: ``engine=None`` builds on the default
    engine, ``options=None`` parses ``spec.build_options``; an engine that is not a
    Docker SDK client is another plugin's (``None``: not built here).
    """
    import docker

    from offload_docker.images import build_image
    from offload_docker.options import BuildOptions, parse_build_options

    if options is None:
        options, problems = parse_build_options(spec.build_options)
        if problems:
            raise offload.ConfigError([offload.Problem("build_options", p, fatal=True) for p in problems])
    if not isinstance(options, BuildOptions):
        return None
    if engine is None:
        client = docker.from_env()
        try:
            return build_image(client, dockerfile, tag, options, log)
        finally:
            client.close()
    if not isinstance(engine, docker.DockerClient):
        return None
    return build_image(engine, dockerfile, tag, options, log)

"""The plugin module named by the ``offload.backends`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import offload
from offload_docker.backend import DockerBackend
from offload_docker.images import ACTIVE_BUILD, build_image


@offload.hookimpl
def offload_register_backends(register: Callable[[type[offload.Backend]], None]) -> None:
    register(DockerBackend)


@offload.hookimpl
def offload_build_image(spec: offload.ImageSpec, dockerfile: str, tag: str, log: Callable[[str], None]) -> Any:
    """Build with the engine of the task being prepared (see ``images.ACTIVE_BUILD``);
    outside a task's preparation, with the default engine and no build options."""
    active = ACTIVE_BUILD.get()
    if active is None:
        import docker

        from offload_docker.options import parse_build_options

        options, problems = parse_build_options(spec.build_options)
        if problems:
            raise offload.ConfigError([offload.Problem("build_options", p, fatal=True) for p in problems])
        client = docker.from_env()
        try:
            return build_image(client, dockerfile, tag, options, log)
        finally:
            client.close()
    client, options = active
    return build_image(client, dockerfile, tag, options, log)

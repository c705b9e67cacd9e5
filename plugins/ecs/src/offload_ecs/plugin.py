"""The entry point of ``offload-ecs`` (group ``offload.backends``)."""

from __future__ import annotations

from collections.abc import Callable

import offload
from offload_ecs.backend import EcsBackend


@offload.hookimpl
def offload_register_backends(register: Callable[[type[offload.Backend]], None]) -> None:
    register(EcsBackend)

"""The ``offload.backends`` entry point of offload-local."""

from __future__ import annotations

from collections.abc import Callable

import offload
from offload_local.backend import LocalBackend


@offload.hookimpl
def offload_register_backends(register: Callable[[type[offload.Backend]], None]) -> None:
    register(LocalBackend)

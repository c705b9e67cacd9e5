"""The ``offload.backends`` entry point of offload-nice."""

from __future__ import annotations

from collections.abc import Callable

import offload
from offload_nice.backend import NiceBackend


@offload.hookimpl
def offload_register_backends(register: Callable[[type[offload.Backend]], None]) -> None:
    register(NiceBackend)

"""The entry point of ``offload-kubernetes`` (group ``offload.backends``)."""

from __future__ import annotations

from collections.abc import Callable

import offload
from offload_kubernetes.backend import KubernetesBackend


@offload.hookimpl
def offload_register_backends(register: Callable[[type[offload.Backend]], None]) -> None:
    register(KubernetesBackend)

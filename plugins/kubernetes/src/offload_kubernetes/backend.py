"""The Kubernetes backend: what the core calls, each step delegated to a module with one job.

Every ``offload`` command loads this module (to parse the config and select backends),
so it imports only what that needs; the modules that talk to the API server are
imported by the methods that use them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from offload import Backend, BackendContext, BackendError, Handle, Health, Problem, Result, Status, Storage, TaskRequest
from offload_kubernetes import leftovers, taskconfig
from offload_kubernetes.client import Kube
from offload_kubernetes.config import KubernetesConfig, parse_kubernetes_config
from offload_kubernetes.taskconfig import KubernetesTaskSettings


class KubernetesBackend(Backend):
    """Runs a task as a Kubernetes Job, through the API server."""

    name = "kubernetes"
    config_type: ClassVar[type] = KubernetesConfig
    #: ``kubernetes:``, and ``docker:`` for its ``image`` only (as Digdag reads it).
    task_keys: ClassVar[tuple[str, ...]] = ("kubernetes", "docker")
    task_config_type: ClassVar[type | None] = KubernetesTaskSettings
    install_hint = "pip install offload-kubernetes"
    #: ``offload gc`` leaves an unfinished Job younger than this (seconds).
    gc_min_age: float = leftovers.MIN_AGE

    def __init__(self, config: Any = None, context: BackendContext | None = None) -> None:
        super().__init__(config, context)
        self.config: KubernetesConfig
        self.kube = Kube(self.config)
        self._cancelled: set[str] = set()

    @classmethod
    def parse_config(cls, data: Mapping[str, Any], where: str, context: BackendContext | None = None) -> tuple[Any, list[Problem]]:
        return parse_kubernetes_config(data, where, context or BackendContext())

    @property
    def storages(self) -> tuple[Storage, Storage] | None:
        """``config_storage.in`` and ``.out``, opened by the core on first use; ``None`` without them."""
        if self.config.storage_in is None or self.config.storage_out is None:
            return None
        return self.context.storages.open(self.config.storage_in), self.context.storages.open(self.config.storage_out)

    def parse_task_config(self, sections: Mapping[str, Any], where: str) -> tuple[Any, list[Problem]]:
        """The task's ``kubernetes:`` section and its ``docker.image`` (see :mod:`.taskconfig`)."""
        return taskconfig.parse(self.config, sections, where)

    def _settings(self, request: TaskRequest) -> KubernetesTaskSettings:
        if not isinstance(request.settings, KubernetesTaskSettings):
            raise BackendError("kubernetes: request.settings is not set: submit through offload.Executor")
        return request.settings

    def submit(self, request: TaskRequest) -> Handle:
        from offload_kubernetes import launch

        return launch.submit(self.kube, self.storages, self.config, self._settings(request), request)

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The Job an interrupted submission created (its name is derived from the task), if any."""
        from offload_kubernetes import launch

        return launch.adopt(self.kube, request)

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        from offload_kubernetes import tracking

        if not handles:
            return []
        return tracking.poll(self.kube, self.config, handles, self._cancelled)

    def collect(self, handle: Handle) -> Result:
        from offload_kubernetes import finish

        return finish.collect(self.kube, self.storages, handle)

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        from offload_kubernetes import finish

        finish.cancel(self.kube, handle, grace, self._cancelled)

    def collect_garbage(self, tracked: Sequence[Handle], dry_run: bool = False, project_dir: str | None = None) -> list[str]:
        if not self.config.configured:
            return []
        return leftovers.collect_garbage(self.kube, tracked, dry_run, project_dir, self.gc_min_age, time.time())

    def check(self) -> Health:
        from offload_kubernetes import health

        storage = self.storages[0] if self.config.configured and self.storages is not None else None
        return health.check(self.kube, self.config, storage)

    def close(self) -> None:
        self.kube.close()

"""The ECS backend: what the core calls, each step delegated to a module with one job.

Every ``offload`` command loads this module (to parse the config and select backends),
so it imports only what that needs; the modules that talk to AWS are imported by the
methods that use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from offload import Backend, BackendContext, BackendError, Handle, Health, Problem, Result, Status, Storage, TaskRequest
from offload_ecs import leftovers, taskconfig
from offload_ecs.aws import Aws
from offload_ecs.config import EcsConfig, parse_ecs_config
from offload_ecs.taskconfig import EcsTaskSettings

if TYPE_CHECKING:
    from offload_ecs.logs import Reader


class EcsBackend(Backend):
    """Runs a task as an AWS ECS task (Fargate or EC2) through boto3."""

    name = "ecs"
    config_type: ClassVar[type] = EcsConfig
    #: ``ecs:``, and ``docker:`` for its ``image`` and ``build`` only (as Digdag reads them).
    task_keys: ClassVar[tuple[str, ...]] = ("ecs", "docker")
    task_config_type: ClassVar[type | None] = EcsTaskSettings
    install_hint = "pip install offload-ecs"
    #: ``offload gc`` leaves a task folder written to more recently than this (seconds).
    gc_min_age: float = leftovers.MIN_AGE

    def __init__(self, config: Any = None, context: BackendContext | None = None) -> None:
        super().__init__(config, context)
        self.config: EcsConfig
        self.aws = Aws(self.config)
        self._cancelled: set[str] = set()
        self._logs: Reader | None = None  # made by the first poll; it keeps the log queries' progress

    @classmethod
    def parse_config(cls, data: Mapping[str, Any], where: str, context: BackendContext | None = None) -> tuple[Any, list[Problem]]:
        return parse_ecs_config(data, where, context or BackendContext())

    @property
    def storage(self) -> Storage:
        """The temporal storage ``temporal_storage`` names, opened by the core on first use."""
        if self.config.storage is None:
            raise BackendError("ecs: not configured (the system config has no ecs section with name and temporal_storage)")
        return self.context.storages.open(self.config.storage)

    def parse_task_config(self, sections: Mapping[str, Any], where: str) -> tuple[Any, list[Problem]]:
        """The task's ``ecs:`` section and its ``docker.image`` / ``docker.build`` (see :mod:`.taskconfig`)."""
        return taskconfig.parse(self.config, sections, where)

    def _settings(self, request: TaskRequest) -> EcsTaskSettings:
        """The settings the core parsed for ``request`` when it selected this backend."""
        if not isinstance(request.settings, EcsTaskSettings):
            raise BackendError("ecs: request.settings is not set: submit through offload.Executor")
        return request.settings

    def _scope(self) -> tuple[str, ...]:
        s = self.config.settings
        return (s.endpoint_url or "", str(self.aws.region), str(self.config.cluster))

    def submit(self, request: TaskRequest) -> Handle:
        from offload_ecs import launch, runtask, taskdefs

        td = taskdefs.resolve(self.aws, self._settings(request), self._scope())
        params, script, state = launch.prepare(self.aws, self.storage, self.config, td, request)
        handle = Handle(self.name, request.task_id, request.io_path, state)
        return runtask.attempt(self.aws, self.storage, self.config, handle, params, script, 1)

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The task already started for ``request`` (found by its ``offload.submission`` tag), if any.

        Nothing found means nothing was started (the driver died before or during
        ``run_task``): the core submits again, with the same client token.
        """
        from offload_ecs import adoption

        return adoption.adopt(self.aws, self.config, request, self._settings(request), self._scope())

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        from offload_ecs import logs, tracking

        if not handles:
            return []
        if self._logs is None:
            self._logs = logs.Reader()
        return tracking.poll(self.aws, self.storage, self.config, handles, self._cancelled, self._logs)

    def collect(self, handle: Handle) -> Result:
        from offload_ecs import finish

        return finish.collect(self.aws, self.storage, handle)

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        """``stop_task`` with a reason; ECS gives the container its ``stopTimeout`` (not ``grace``)."""
        from offload_ecs import finish

        finish.cancel(self.aws, self.storage, handle, self._cancelled)

    def collect_garbage(self, tracked: Sequence[Handle], dry_run: bool = False, project_dir: str | None = None) -> list[str]:
        """This project's task folders in the temporal storage that no tracked handle names
        (see :mod:`.leftovers`); nothing when ECS is not configured or the storage cannot list."""
        if not self.config.configured:
            return []
        return leftovers.collect_garbage(self.storage, tracked, dry_run, project_dir, self.gc_min_age)

    def check(self) -> Health:
        from offload_ecs import health

        return health.check(self.aws, self.config, self.storage if self.config.configured else None)

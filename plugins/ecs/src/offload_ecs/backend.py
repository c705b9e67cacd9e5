"""The ECS backend: what the core calls, each step delegated to a module with one job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from offload import Backend, BackendContext, BackendError, Handle, Health, Problem, Result, Status, TaskRequest
from offload_ecs import adoption, finish, health, launch, runtask, taskdefs, tracking
from offload_ecs.aws import Aws
from offload_ecs.config import EcsConfig, parse_ecs_config

#: Keys a task may set under ``ecs:`` in its workflow.
TASK_KEYS = ("task_definition_arn", "container_name")


class EcsBackend(Backend):
    """Runs a task as an AWS ECS task (Fargate or EC2) through boto3."""

    name = "ecs"
    config_type: ClassVar[type] = EcsConfig
    install_hint = "pip install offload-ecs"

    def __init__(self, config: Any = None, context: BackendContext | None = None) -> None:
        super().__init__(config, context)
        self.config: EcsConfig
        self.aws = Aws(self.config)
        self._cancelled: set[str] = set()

    @classmethod
    def parse_config(cls, data: Mapping[str, Any], where: str) -> tuple[Any, list[Problem]]:
        return parse_ecs_config(data, where)

    def usable(self, task: TaskRequest) -> list[Problem]:
        if not self.config.configured:
            return [Problem("command_executor.ecs", "not configured (the system config has no ecs section with name and temporal_storage)")]
        ecs = task.executor_config.get("ecs")
        docker = task.executor_config.get("docker")
        problems: list[Problem] = []
        if ecs is not None and not isinstance(ecs, Mapping):
            return [Problem(f"task {task.task_id}: ecs", "must be a mapping", fatal=True)]
        ecs = ecs or {}
        for key in sorted(set(ecs) - set(TASK_KEYS)):
            problems.append(Problem(f"task {task.task_id}: ecs.{key}", f"unknown key (known keys: {', '.join(TASK_KEYS)})", fatal=True))
        for key in TASK_KEYS:
            if key in ecs and (not isinstance(ecs[key], str) or not ecs[key]):
                problems.append(Problem(f"task {task.task_id}: ecs.{key}", f"must be a non-empty string, got {ecs[key]!r}", fatal=True))
        if problems:
            return problems
        if ecs.get("task_definition_arn"):
            return []
        image = docker.get("image") if isinstance(docker, Mapping) else None
        if not image:
            return [Problem(f"task {task.task_id}", "sets neither ecs.task_definition_arn nor docker.image")]
        if isinstance(docker, Mapping) and docker.get("build"):
            return [
                Problem(
                    f"task {task.task_id}: docker.build",
                    "ECS cannot build images: the task's docker.build needs the docker backend (or set ecs.task_definition_arn)",
                )
            ]
        return []

    def _scope(self) -> tuple[str, ...]:
        s = self.config.settings
        return (s.endpoint_url or "", str(self.aws.region), str(self.config.cluster))

    def submit(self, request: TaskRequest) -> Handle:
        problems = [p for p in self.usable(request)]
        if problems:
            raise BackendError("ecs: " + "; ".join(str(p) for p in problems))
        td = taskdefs.resolve(self.aws, request.executor_config, self._scope())
        params, script, state = launch.prepare(self.aws, self.config, td, request)
        handle = Handle(self.name, request.task_id, request.io_path, state)
        return runtask.attempt(self.aws, self.config, handle, params, script, 1)

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The task already started for ``request`` (found by its ``offload.submission`` tag), if any.

        Nothing found means nothing was started (the driver died before or during
        ``run_task``): the core submits again, with the same client token.
        """
        if self.usable(request):
            return None
        return adoption.adopt(self.aws, self.config, request, self._scope())

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        if not handles:
            return []
        return tracking.poll(self.aws, self.config, handles, self._cancelled)

    def collect(self, handle: Handle) -> Result:
        return finish.collect(self.aws, handle)

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        """``stop_task`` with a reason; ECS gives the container its ``stopTimeout`` (not ``grace``)."""
        finish.cancel(self.aws, handle, self._cancelled)

    def check(self) -> Health:
        return health.check(self.aws, self.config)

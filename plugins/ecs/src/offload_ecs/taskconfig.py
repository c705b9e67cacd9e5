"""A task's settings for ECS: its ``ecs:`` section, and ``docker.image`` / ``docker.build``.

::

    ecs:
      task_definition_arn: arn:aws:ecs:us-east-1:123:task-definition/flow:3   # or, instead:
    docker:
      image: python:3.12      # the task definition tagged offload.docker.image=python:3.12

ECS reads only ``image`` and ``build`` of the docker section, as Digdag does; its other
keys (``run_options``, ``pull_always``...) belong to the docker backend and are ignored
here. The core parses a task once, when it selects its backend, and hands the result to
``submit`` and ``adopt`` as ``request.settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from offload import Problem
from offload_ecs.config import EcsConfig

#: Keys a task may set under ``ecs:`` in its workflow.
ECS_KEYS = ("task_definition_arn", "container_name")


@attrs.frozen
class EcsTaskSettings:
    """What ECS needs of a task: its task definition (by ARN, or by image) and container."""

    task_definition_arn: str | None = None
    container_name: str | None = None
    image: str | None = None


def parse(config: EcsConfig, sections: Mapping[str, Any], where: str) -> tuple[EcsTaskSettings | None, list[Problem]]:
    """The task's settings, or the problems that keep ECS from running it.

    Fatal problems are a wrong ``ecs:`` section; the others mean "not configured for this
    task" (ECS not configured, no task definition named, an image to build).
    """
    if not config.configured:
        return None, [Problem("command_executor.ecs", "not configured (the system config has no ecs section with name and temporal_storage)")]
    ecs = sections.get("ecs")
    docker = sections.get("docker")
    if ecs is not None and not isinstance(ecs, Mapping):
        return None, [Problem(f"{where}: ecs", "must be a mapping", fatal=True)]
    ecs = ecs or {}
    problems: list[Problem] = []
    for key in sorted(set(ecs) - set(ECS_KEYS)):
        problems.append(Problem(f"{where}: ecs.{key}", f"unknown key (known keys: {', '.join(ECS_KEYS)})", fatal=True))
    for key in ECS_KEYS:
        if key in ecs and (not isinstance(ecs[key], str) or not ecs[key]):
            problems.append(Problem(f"{where}: ecs.{key}", f"must be a non-empty string, got {ecs[key]!r}", fatal=True))
    if problems:
        return None, problems
    container_name = ecs.get("container_name")
    if ecs.get("task_definition_arn"):
        return EcsTaskSettings(task_definition_arn=ecs["task_definition_arn"], container_name=container_name), []
    image = docker.get("image") if isinstance(docker, Mapping) else None
    if not image:
        return None, [Problem(where, "sets neither ecs.task_definition_arn nor docker.image")]
    if isinstance(docker, Mapping) and docker.get("build"):
        return None, [
            Problem(
                f"{where}: docker.build",
                "ECS cannot build images: the task's docker.build needs the docker backend (or set ecs.task_definition_arn)",
            )
        ]
    return EcsTaskSettings(container_name=container_name, image=str(image)), []

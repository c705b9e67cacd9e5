"""Finding the task definition of a task: by ARN, or by image through its tag.

Digdag lists every task definition and asks for the tags of each one until it finds
``digdag.docker.image=<image>`` (its issue #1488: slow, throttled). offload asks the
Resource Groups Tagging API once, filtered on the server by the tag, then describes the
newest match: two calls, none when the answer is cached for this process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from offload import BackendError
from offload_ecs.aws import Aws, error_message
from offload_ecs.taskconfig import EcsTaskSettings

TAG_KEYS = ("offload.docker.image", "digdag.docker.image")

_cache: dict[tuple[str, ...], TaskDefinition] = {}
_cache_lock = threading.Lock()


@attrs.frozen
class TaskDefinition:
    """What offload needs of a task definition to run and follow a task."""

    arn: str
    container: str
    network_mode: str = "bridge"
    log_group: str | None = None
    log_prefix: str | None = None
    log_region: str | None = None
    note: str | None = None

    def log_stream(self, task_arn: str) -> str | None:
        if not self.log_group or not self.log_prefix:
            return None
        return f"{self.log_prefix}/{self.container}/{task_arn.rsplit('/', 1)[-1]}"


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _revision(arn: str) -> tuple[int, str]:
    match = re.search(r"task-definition/([^:]+):(\d+)$", arn)
    return (int(match[2]), match[1]) if match else (0, arn)


def _from_description(desc: Mapping[str, Any], container_name: str | None, note: str | None) -> TaskDefinition:
    containers = desc.get("containerDefinitions") or []
    arn = desc["taskDefinitionArn"]
    if not containers:
        raise BackendError(f"ecs: task definition {arn} has no container definitions")
    if container_name:
        chosen = next((c for c in containers if c.get("name") == container_name), None)
        if chosen is None:
            names = ", ".join(c.get("name", "?") for c in containers)
            raise BackendError(f"ecs: task definition {arn} has no container named {container_name!r} (it has {names})")
    else:
        chosen = next((c for c in containers if c.get("essential", True)), containers[0])
    log = chosen.get("logConfiguration") or {}
    options = log.get("options") or {} if log.get("logDriver") == "awslogs" else {}
    return TaskDefinition(
        arn=arn,
        container=chosen["name"],
        network_mode=desc.get("networkMode") or "bridge",
        log_group=options.get("awslogs-group"),
        log_prefix=options.get("awslogs-stream-prefix"),
        log_region=options.get("awslogs-region"),
        note=note,
    )


def _describe(aws: Aws, arn: str) -> dict[str, Any]:
    response = aws.call("ecs", "describe_task_definition", taskDefinition=arn)
    return dict(response["taskDefinition"])


def _tagged(aws: Aws, key: str, image: str) -> list[str]:
    arns: list[str] = []
    token = ""
    while True:
        params: dict[str, Any] = {"TagFilters": [{"Key": key, "Values": [image]}], "ResourceTypeFilters": ["ecs:task-definition"]}
        if token:
            params["PaginationToken"] = token
        page = aws.call("resourcegroupstaggingapi", "get_resources", **params)
        arns.extend(item["ResourceARN"] for item in page.get("ResourceTagMappingList", []))
        token = page.get("PaginationToken") or ""
        if not token:
            return arns


def _by_image(aws: Aws, image: str, container_name: str | None) -> TaskDefinition:
    for key in TAG_KEYS:
        arns = sorted(set(_tagged(aws, key, image)), key=_revision, reverse=True)
        if not arns:
            continue
        for arn in arns:
            desc = _describe(aws, arn)
            if desc.get("status", "ACTIVE") == "ACTIVE":
                note = None
                if len(arns) > 1:
                    note = f"{len(arns)} task definitions are tagged {key}={image}; using the newest active one, {arn}"
                return _from_description(desc, container_name, note)
        raise BackendError(f"ecs: every task definition tagged {key}={image} is inactive ({', '.join(arns)}); register a new revision with that tag")
    raise BackendError(
        f"ecs: no task definition is tagged offload.docker.image={image}: register one for image {image} "
        f"and tag it offload.docker.image={image} (digdag.docker.image is accepted too), or set ecs.task_definition_arn"
    )


def resolve(aws: Aws, settings: EcsTaskSettings, scope: tuple[str, ...]) -> TaskDefinition:
    """The task definition named by a task's settings, cached per process under ``scope``."""
    container_name = settings.container_name or aws.config.settings.container_name
    arn = settings.task_definition_arn
    image = settings.image
    key = (*scope, "arn" if arn else "image", str(arn or image), str(container_name))
    with _cache_lock:
        found = _cache.get(key)
    if found is not None:
        return attrs.evolve(found, note=None)
    try:
        if arn:
            found = _from_description(_describe(aws, arn), container_name, None)
        elif image:
            found = _by_image(aws, image, container_name)
        else:
            raise BackendError("ecs: the task's settings name neither a task definition nor an image")
    except BackendError:
        raise
    except Exception as e:  # noqa: BLE001 - botocore's ClientError and friends
        what = f"task definition {arn}" if arn else f"the task definition of image {image}"
        raise BackendError(f"ecs: cannot find {what}: {error_message(e)}") from None
    with _cache_lock:
        _cache[key] = found
    return found

"""Starting a task: ship the project to S3, build the RunTask call, run it.

``run_task`` answers capacity problems (``RESOURCE:*``, ``AGENT``, "Capacity is
unavailable") in ``failures[]`` rather than as errors. Those are tried again with
exponential backoff and jitter up to ``max_run_task_attempts``; the waiting happens
between polls (the handle carries the call), so ``submit`` returns at once.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from typing import Any

from botocore.exceptions import ClientError

from offload import BackendError, Handle, TaskRequest
from offload_ecs import archive, bootstrap
from offload_ecs.aws import Aws, error_message
from offload_ecs.config import EcsConfig
from offload_ecs.kwargs import merge_run_task_kwargs, validate_params
from offload_ecs.taskdefs import TaskDefinition

#: ECS's limit on the characters of a RunTask ``overrides``.
OVERRIDE_LIMIT = 8192
#: Presigned URLs outlive the task's timeout by this much; without a timeout they last S3's maximum.
URL_MARGIN = 3600
URL_MAX = 7 * 24 * 3600
MAX_BACKOFF = 120.0


def url_expiry(timeout: float | None) -> int:
    if timeout is None:
        return URL_MAX
    return int(min(URL_MAX, timeout + URL_MARGIN))


def backoff(attempt: int, base: float) -> float:
    """Exponential backoff with jitter: about ``base * 2**(attempt-1)``, at most ``MAX_BACKOFF``."""
    delay = min(MAX_BACKOFF, base * 2.0 ** (attempt - 1))
    return float(delay / 2 + random.uniform(0, delay / 2))


def _size(overrides: dict[str, Any]) -> int:
    return len(json.dumps(overrides, separators=(",", ":")))


def _network(config: EcsConfig, td: TaskDefinition, extra: dict[str, Any]) -> dict[str, Any] | None:
    s = config.settings
    if td.network_mode != "awsvpc" or "networkConfiguration" in extra:
        return None
    if not s.subnets:
        raise BackendError(f"ecs: task definition {td.arn} uses the awsvpc network mode: set command_executor.ecs.{config.cluster}.subnets")
    vpc: dict[str, Any] = {"subnets": list(s.subnets), "assignPublicIp": "ENABLED" if s.assign_public_ip else "DISABLED"}
    if s.security_groups:
        vpc["securityGroups"] = list(s.security_groups)
    return {"awsvpcConfiguration": vpc}


def _tags(config: EcsConfig, request: TaskRequest) -> list[dict[str, str]]:
    tags = {**config.settings.tags, **{k: v for k, v in request.labels.items()}, "offload.task-id": request.task_id}
    return [{"key": k[:128], "value": str(v)[:256]} for k, v in tags.items()]


def _resources(config: EcsConfig, request: TaskRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """Container-level and task-level size overrides; the task's own resources win over the config's."""
    s = config.settings
    res = request.resources
    container: dict[str, Any] = {}
    task: dict[str, Any] = {}
    cpu = int(res.cpu * 1024) if res.cpu else s.container_cpu
    memory = res.memory or s.container_memory
    if cpu:
        container["cpu"] = cpu
    if memory:
        container["memory"] = memory
    task_cpu = str(int(res.cpu * 1024)) if res.cpu else s.task_cpu
    task_memory = str(res.memory) if res.memory else s.task_memory
    if task_cpu:
        task["cpu"] = task_cpu
    if task_memory:
        task["memory"] = task_memory
    return container, task


def build_params(
    config: EcsConfig, td: TaskDefinition, request: TaskRequest, command: str, env: dict[str, str] | None, env_files: list[dict[str, str]]
) -> dict[str, Any]:
    s = config.settings
    extra = config.run_task_kwargs
    container_size, task_size = _resources(config, request)
    ctr: dict[str, Any] = {"name": td.container, "command": ["/bin/sh", "-c", command], **container_size}
    if env:
        ctr["environment"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    if env_files:
        ctr["environmentFiles"] = env_files
    params: dict[str, Any] = {
        "cluster": config.cluster,
        "taskDefinition": td.arn,
        "count": 1,
        "overrides": {"containerOverrides": [ctr], **task_size},
        "startedBy": s.started_by,
        "tags": _tags(config, request),
    }
    if s.launch_type:
        params["launchType"] = s.launch_type
    strategy = config.capacity_provider_strategy
    if strategy:
        params["capacityProviderStrategy"] = strategy
    if s.platform_version and s.launch_type != "EC2":
        params["platformVersion"] = s.platform_version
    network = _network(config, td, extra)
    if network:
        params["networkConfiguration"] = network
    if s.placement_strategy_type:
        placement: dict[str, str] = {"type": s.placement_strategy_type}
        if s.placement_strategy_field:
            placement["field"] = s.placement_strategy_field
        params["placementStrategy"] = [placement]
    return merge_run_task_kwargs(params, extra)


def _key_part(task_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", task_id)[:100] or "task"


def prepare(aws: Aws, config: EcsConfig, td: TaskDefinition, request: TaskRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload the project and build the RunTask params; returns them and the handle state."""
    storage = config.storage
    assert storage is not None and config.cluster is not None
    nonce = uuid.uuid4().hex[:12]
    base = f"{storage.prefix}{_key_part(request.task_id)}-{nonce}/"
    keys: dict[str, str | None] = {"input_key": base + "project.tar.gz", "output_key": base + "io.tar.gz", "env_key": None}
    expires = url_expiry(request.timeout)
    get_url = aws.presign("get_object", storage.bucket, base + "project.tar.gz", expires)
    put_url = aws.presign("put_object", storage.bucket, base + "io.tar.gz", expires)
    marker = f"offload-end-of-log {nonce}"
    io_dir = os.path.normpath(request.io_dir)
    workdir = os.path.normpath(request.workdir)
    body = bootstrap.body(request.argv, workdir, io_dir, put_url, marker)
    notes: list[str] = []
    extra: dict[str, str] = {}
    env: dict[str, str] | None = dict(request.env)
    env_files: list[dict[str, str]] = []
    params = build_params(config, td, request, bootstrap.loader(get_url, body), env, env_files)
    if _size(params["overrides"]) > OVERRIDE_LIMIT and request.env:
        text = bootstrap.env_file(request.env) if config.settings.use_environment_file else None
        if text is not None:
            keys["env_key"] = base + "task.env"
            aws.call("s3", "put_object", Bucket=storage.bucket, Key=keys["env_key"], Body=text.encode("utf-8"))
            env_files = [{"value": f"arn:aws:s3:::{storage.bucket}/{keys['env_key']}", "type": "s3"}]
            notes.append("the environment goes in an ECS environment file: inline it would pass the 8192-character override limit")
        else:
            try:
                extra["env.sh"] = bootstrap.env_script(request.env)
            except ValueError as e:
                raise BackendError(f"ecs: the environment is too large for the container override and {e}") from None
            why = " (a value has a line break, which environment files cannot hold)" if config.settings.use_environment_file else ""
            notes.append(f"the environment goes in the project archive: inline it would pass the 8192-character override limit{why}")
        env = None
        params = build_params(config, td, request, bootstrap.loader(get_url, body), env, env_files)
    if _size(params["overrides"]) > OVERRIDE_LIMIT:
        extra["main.sh"] = body
        params = build_params(config, td, request, bootstrap.loader(get_url, None), env, env_files)
        notes.append("the command goes in the project archive: inline it would pass the 8192-character override limit")
    if _size(params["overrides"]) > OVERRIDE_LIMIT:
        raise BackendError(
            f"ecs: the container override is {_size(params['overrides'])} characters even with the command and environment "
            f"moved to the archive; ECS allows {OVERRIDE_LIMIT} (check run_task_kwargs.overrides)"
        )
    problems = validate_params(params)
    if problems:
        raise BackendError("ecs: the RunTask call would be invalid: " + "; ".join(problems))
    path = archive.build(request.project_dir, io_dir, extra)
    try:
        with open(path, "rb") as f:
            aws.call("s3", "put_object", Bucket=storage.bucket, Key=base + "project.tar.gz", Body=f)
    except ClientError as e:
        raise BackendError(f"ecs: cannot upload the project to s3://{storage.bucket}/{keys['input_key']}: {error_message(e)}") from None
    finally:
        os.unlink(path)
    if td.note:
        notes.insert(0, td.note)
    state = {
        "cluster": config.cluster,
        "region": aws.region,
        "task_arn": None,
        "container": td.container,
        "log_group": td.log_group,
        "log_prefix": td.log_prefix,
        "log_region": td.log_region,
        "log_stream": None,
        "log_token": None,
        "bucket": storage.bucket,
        **keys,
        "marker": marker,
        "submitted_at": time.time(),
        "timeout": request.timeout,
        "notes": notes,
    }
    return params, state


def run_once(aws: Aws, params: dict[str, Any]) -> tuple[str | None, str | None]:
    """One ``run_task``: the task ARN, or the failures that AWS gave instead."""
    try:
        response = aws.call("ecs", "run_task", **params)
    except ClientError as e:
        raise BackendError(f"ecs: run_task refused the task: {error_message(e)}") from None
    tasks = response.get("tasks") or []
    if tasks:
        return str(tasks[0]["taskArn"]), None
    failures = response.get("failures") or [{"reason": "no task and no failure in the answer"}]
    text = "; ".join(f"{f.get('reason', '?')}" + (f" ({f['detail']})" if f.get("detail") else "") for f in failures)
    return None, text


def started_state(state: dict[str, Any], arn: str) -> dict[str, Any]:
    stream = None
    if state.get("log_group") and state.get("log_prefix"):
        stream = f"{state['log_prefix']}/{state['container']}/{arn.rsplit('/', 1)[-1]}"
    return {**state, "task_arn": arn, "log_stream": stream, "run": None}


def attempt(aws: Aws, config: EcsConfig, handle: Handle, params: dict[str, Any], attempts: int) -> Handle:
    """Try ``run_task``; the handle of the started task, or one that says when to try again."""
    arn, failure = run_once(aws, params)
    if arn is not None:
        return Handle(handle.backend, handle.task_id, handle.io_path, started_state(dict(handle.state), arn))
    limit = config.settings.max_run_task_attempts
    if attempts >= limit:
        error = f"run_task failed {attempts} time{'s' if attempts > 1 else ''}: {failure}"
        return handle.with_state(run=None, final_error=error)
    delay = backoff(attempts, config.settings.run_task_retry_delay)
    note = f"run_task failed ({failure}); attempt {attempts + 1} of {limit} in {delay:.1f} s"
    return handle.with_state(run={"params": params, "attempts": attempts, "retry_at": time.time() + delay}, notes=[*handle.state.get("notes", []), note])

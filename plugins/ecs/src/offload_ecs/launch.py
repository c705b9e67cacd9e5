"""Preparing a task: ship the project to the temporal storage and build the RunTask call
(made by :mod:`.runtask`).

Where the task's files go and its end-of-log marker come from the submission's
identity (:mod:`.identity`), so a restarted driver finds them without a journaled
handle. The handle's state holds no presigned URL (they grant access to the bucket for
up to 7 days, and the journal is a file on disk): only the keys, from which
:func:`command` signs new URLs when ``run_task`` is tried again.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import unicodedata
from collections.abc import Mapping
from typing import Any

from offload import BackendError, Storage, TaskRequest, remote
from offload_ecs import identity
from offload_ecs.aws import Aws
from offload_ecs.config import EcsConfig
from offload_ecs.kwargs import merge_run_task_kwargs, validate_params
from offload_ecs.taskdefs import TaskDefinition

#: ECS's limit on the characters of a RunTask ``overrides``.
OVERRIDE_LIMIT = 8192
MAX_BACKOFF = 120.0


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


def tag_text(text: str) -> str:
    """``text`` in the characters ECS allows in tags (letters, numbers, spaces, ``_.:/=+-@``).

    Labels and task ids come from the core, in any characters; RunTask would refuse
    them. They name the task for people: the ``offload.submission`` tag identifies it.
    """
    return "".join(c if c in "_.:/=+-@" or unicodedata.category(c)[0] in "LNZ" else "_" for c in text)


def _tags(config: EcsConfig, request: TaskRequest) -> list[dict[str, str]]:
    tags = {
        **config.settings.tags,
        **{tag_text(k): tag_text(str(v)) for k, v in request.labels.items()},
        "offload.task-id": tag_text(request.task_id),
        identity.SUBMISSION_TAG: identity.submission_id(request.project_dir, request.task_id),
    }
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


def initial_state(aws: Aws, config: EcsConfig, td: TaskDefinition, request: TaskRequest) -> dict[str, Any]:
    """The handle state of ``request`` before ``run_task``: where everything is, and no secret.

    The keys are the storage's (under its prefix): ``<project>/<task>-<submission>/...``,
    so that ``offload gc`` finds one project's leftovers and nothing else.
    """
    assert config.cluster is not None
    submission = identity.submission_id(request.project_dir, request.task_id)
    base = f"{identity.project_tag(request.project_dir)}/{_key_part(request.task_id)}-{identity.short(submission)}/"
    return {
        "cluster": config.cluster,
        "region": aws.region,
        "task_arn": None,
        "container": td.container,
        "log_group": td.log_group,
        "log_prefix": td.log_prefix,
        "log_region": td.log_region,
        "log_stream": None,
        "input_key": base + "project.tar.gz",
        "output_key": base + "io.tar.gz",
        "env_key": None,
        "run_key": None,
        "submission": submission,
        "marker": f"offload-end-of-log {identity.short(submission)}",
        "submitted_at": time.time(),
        "timeout": request.timeout,
        "notes": [],
    }


def prefix(state: Mapping[str, Any]) -> str:
    """The storage key prefix of the task's files (ends with ``/``)."""
    return str(state["input_key"]).rsplit("/", 1)[0] + "/"


def urls(storage: Storage, state: Mapping[str, Any]) -> tuple[str, str]:
    """Presigned GET of the project and PUT of the output, signed now: never kept in the state.
    They outlive the task's timeout (by an hour, up to the storage's maximum)."""
    expires = storage.url_lifetime(state.get("timeout"))
    return storage.presign_get(state["input_key"], expires), storage.presign_put(state["output_key"], expires)


def environment_file_arn(storage: Storage, key: str) -> str | None:
    """The S3 object ARN ECS reads an environment file from; ``None`` on another storage
    (ECS reads environment files from S3 only)."""
    uri = storage.uri(key)
    return "arn:aws:s3:::" + uri[len("s3://") :] if uri.startswith("s3://") else None


def loader(config: EcsConfig, get_url: str, main: str | None) -> str:
    """The container's loader (``main``: the body inline, or ``None`` when it is in the
    archive), with ``retry_task_scripts_downloads`` retries of the download."""
    return remote.loader(get_url, main, download_retries=config.script.retry_task_scripts_downloads)


def body(config: EcsConfig, script: Mapping[str, Any], put_url: str, marker: str) -> str:
    """The part of the container's script that runs ``script`` and sends the io directory back,
    as ``retry_task_output_uploads`` and ``enable_curl_fail_opt_on_uploads`` say."""
    fail = config.script.enable_curl_fail_opt_on_uploads
    return remote.task_body(
        script["argv"],
        script["workdir"],
        script["io_dir"],
        put_url,
        marker,
        upload_retries=config.script.retry_task_output_uploads,
        curl_fail=fail,
        failed_upload_fails=fail,
    )


def command(storage: Storage, config: EcsConfig, state: Mapping[str, Any], script: Mapping[str, Any]) -> str:
    """The container command for ``script`` (see :func:`prepare`) with freshly signed URLs.

    When the body travels in the archive (``in_archive``), it carries the PUT URL signed
    when the archive was made; only the loader's GET URL is new.
    """
    get_url, put_url = urls(storage, state)
    if script["in_archive"]:
        return loader(config, get_url, None)
    return loader(config, get_url, body(config, script, put_url, state["marker"]))


def with_command(params: Mapping[str, Any], container: str, text: str) -> dict[str, Any]:
    """``params`` with ``text`` as the command of offload's container."""
    out = json.loads(json.dumps(params))
    for ctr in out["overrides"]["containerOverrides"]:
        if ctr.get("name") == container:
            ctr["command"] = ["/bin/sh", "-c", text]
    return dict(out)


def prepare(aws: Aws, storage: Storage, config: EcsConfig, td: TaskDefinition, request: TaskRequest) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Upload the project and build the RunTask params: the params, the script and the handle state.

    The script (argv, working and io directories, whether the body is in the archive) is
    what :func:`command` needs to sign the URLs again for another ``run_task`` attempt.
    """
    state = initial_state(aws, config, td, request)
    base = prefix(state)
    get_url, put_url = urls(storage, state)
    io_dir = os.path.normpath(request.io_dir)
    workdir = os.path.normpath(request.workdir)
    script: dict[str, Any] = {"argv": list(request.argv), "workdir": workdir, "io_dir": io_dir, "in_archive": False}
    main = body(config, script, put_url, state["marker"])
    notes: list[str] = []
    extra: dict[str, str] = {}
    env: dict[str, str] | None = dict(request.env)
    env_files: list[dict[str, str]] = []
    params = build_params(config, td, request, loader(config, get_url, main), env, env_files)
    if _size(params["overrides"]) > OVERRIDE_LIMIT and request.env:
        text = remote.env_file(request.env) if config.settings.use_environment_file else None
        arn = environment_file_arn(storage, base + "task.env")
        if text is not None and arn is not None:
            state["env_key"] = base + "task.env"
            storage.put(state["env_key"], text.encode("utf-8"))
            env_files = [{"value": arn, "type": "s3"}]
            notes.append("the environment goes in an ECS environment file: inline it would pass the 8192-character override limit")
        else:
            try:
                extra["env.sh"] = remote.env_script(request.env)
            except ValueError as e:
                raise BackendError(f"ecs: the environment is too large for the container override and {e}") from None
            why = ""
            if config.settings.use_environment_file:
                why = " (ECS reads environment files from S3 only)" if arn is None else " (a value has a line break, which environment files cannot hold)"
            notes.append(f"the environment goes in the project archive: inline it would pass the 8192-character override limit{why}")
        env = None
        params = build_params(config, td, request, loader(config, get_url, main), env, env_files)
    if _size(params["overrides"]) > OVERRIDE_LIMIT:
        extra["main.sh"] = main
        script["in_archive"] = True
        params = build_params(config, td, request, loader(config, get_url, None), env, env_files)
        notes.append("the command goes in the project archive: inline it would pass the 8192-character override limit")
    if _size(params["overrides"]) > OVERRIDE_LIMIT:
        raise BackendError(
            f"ecs: the container override is {_size(params['overrides'])} characters even with the command and environment "
            f"moved to the archive; ECS allows {OVERRIDE_LIMIT} (check run_task_kwargs.overrides)"
        )
    problems = validate_params(params)
    if problems:
        raise BackendError("ecs: the RunTask call would be invalid: " + "; ".join(problems))
    path = remote.build_archive(request.project_dir, io_dir, extra)
    try:
        storage.put_file(state["input_key"], path)
    finally:
        os.unlink(path)
    if td.note:
        notes.insert(0, td.note)
    state["notes"] = notes
    return params, script, state


def started_state(state: Mapping[str, Any], arn: str) -> dict[str, Any]:
    stream = None
    if state.get("log_group") and state.get("log_prefix"):
        stream = f"{state['log_prefix']}/{state['container']}/{arn.rsplit('/', 1)[-1]}"
    return {**state, "task_arn": arn, "log_stream": stream, "run": None}

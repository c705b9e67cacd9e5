"""Finding the task already started for a submission, and its handle, after the driver died.

The driver journals "submitting" before it calls ``run_task`` and the handle after: a
driver killed in between leaves a task running that no journal names. On resume the
core calls ``adopt``: the task is looked up by its ``offload.submission`` tag
(:mod:`.identity`) and its handle rebuilt, the same as :func:`.launch.prepare` and
``run_task`` would have made it (keys, marker, log stream from the head), so it is
polled, collected and cancelled like any other.

``ListTasks`` filters by ``startedBy`` on the server, but ``startedBy`` is the configured
one (users filter their tasks by it), shared by every offload task of the cluster: the
lookup lists those started by it (running, then stopped: ECS keeps a stopped task for
about an hour) and describes them with their tags, 100 per call. It runs only for a
task whose submission was interrupted, so its cost (two calls per 100 such tasks in
the cluster) is paid at most once per interrupted task.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from offload import BackendError, Handle, TaskRequest
from offload_ecs import identity, launch, taskdefs
from offload_ecs.aws import Aws, error_message
from offload_ecs.config import EcsConfig
from offload_ecs.outcome import timestamp
from offload_ecs.taskconfig import EcsTaskSettings

#: ``describe_tasks`` takes at most this many tasks per call.
BATCH = 100
#: Waits (s) between lookups when ``run_task`` says the token was used: ECS's lists are
#: eventually consistent, so a task started a moment ago may not be listed yet.
LOOKUP_WAITS = (0.0, 0.5, 1.0, 2.0)


def started_by(config: EcsConfig) -> str:
    """The ``startedBy`` of offload's tasks: ``run_task_kwargs`` win over ``started_by``."""
    return str(config.run_task_kwargs.get("startedBy", config.settings.started_by) or "")


def _list(aws: Aws, cluster: str, who: str, status: str) -> list[str]:
    arns: list[str] = []
    token = ""
    while True:
        params: dict[str, Any] = {"cluster": cluster, "desiredStatus": status}
        if who:
            params["startedBy"] = who
        if token:
            params["nextToken"] = token
        page = aws.call("ecs", "list_tasks", **params)
        arns.extend(page.get("taskArns") or [])
        token = page.get("nextToken") or ""
        if not token:
            return arns


def find(aws: Aws, config: EcsConfig, submission: str) -> dict[str, Any] | None:
    """The description of the task tagged with ``submission`` in the configured cluster, if any."""
    from botocore.exceptions import ClientError

    cluster = config.cluster
    assert cluster is not None
    who = started_by(config)
    try:
        # Running first: a task that stops between the two lists is then in the second.
        arns = list(dict.fromkeys(_list(aws, cluster, who, "RUNNING") + _list(aws, cluster, who, "STOPPED")))
        for start in range(0, len(arns), BATCH):
            response = aws.call("ecs", "describe_tasks", cluster=cluster, tasks=arns[start : start + BATCH], include=["TAGS"])
            for task in response.get("tasks") or []:
                tags = {t.get("key"): t.get("value") for t in task.get("tags") or []}
                if tags.get(identity.SUBMISSION_TAG) == submission:
                    return dict(task)
    except ClientError as e:
        raise BackendError(f"ecs: cannot look for the task already started for this submission in cluster {cluster}: {error_message(e)}") from None
    return None


def find_soon(aws: Aws, config: EcsConfig, submission: str, sleep: Any = time.sleep) -> dict[str, Any] | None:
    """:func:`find`, tried again over a few seconds (``LOOKUP_WAITS``) while it finds nothing."""
    for wait in LOOKUP_WAITS:
        if wait:
            sleep(wait)
        task = find(aws, config, submission)
        if task is not None:
            return task
    return None


def adopted_state(state: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` (as :func:`.launch.initial_state` makes it) for the found ``task``."""
    out = launch.started_state(state, str(task["taskArn"]))
    created = timestamp(task.get("createdAt"))
    if created is not None:
        out["submitted_at"] = created  # the timeout counts from the first submission
    overrides = (task.get("overrides") or {}).get("containerOverrides") or []
    ours: Mapping[str, Any] = next((c for c in overrides if c.get("name") == state["container"]), {})
    if ours.get("environmentFiles"):
        out["env_key"] = launch.prefix(state) + "task.env"
    out["run_key"] = launch.prefix(state) + "run.json"  # deleted at collect if it is there
    out["notes"] = [*state.get("notes", []), f"found task {task['taskArn']}, started for this submission before the driver stopped; following it"]
    return out


def adopt(aws: Aws, config: EcsConfig, request: TaskRequest, settings: EcsTaskSettings, scope: tuple[str, ...]) -> Handle | None:
    """The handle of the task already started for ``request`` (with ``settings``, its
    parsed settings), or ``None`` when there is none."""
    task = find(aws, config, identity.submission_id(request.project_dir, request.task_id))
    if task is None:
        return None
    # the definition the task was started with, whether it was named by ARN or by image
    by_arn = EcsTaskSettings(task_definition_arn=str(task["taskDefinitionArn"]), container_name=settings.container_name)
    td = taskdefs.resolve(aws, by_arn, scope)
    state = launch.initial_state(aws, config, td, request)
    return Handle("ecs", request.task_id, request.io_path, adopted_state(state, task))

"""Calling ``run_task``: idempotently, and again after ``failures[]``.

Every call carries a ``clientToken`` derived from the submission and the attempt
(:mod:`.identity`), so the same call made twice (a driver that died before journaling
the handle, then submitted again) cannot start a second task: ECS answers with the
first task, or with ``ConflictException`` when the parameters differ (they do: the
presigned URLs are signed anew). Then the first task is looked up by its tag and
followed. A token that was used but started no task (its call got ``failures[]``)
counts as one more failure.

``run_task`` answers capacity problems (``RESOURCE:*``, ``AGENT``, "Capacity is
unavailable") in ``failures[]`` rather than as errors. Those are tried again with
exponential backoff and jitter up to ``max_run_task_attempts``; the waiting happens
between polls, so ``submit`` returns at once. The handle then says only when to try
again: the call itself waits in the task's S3 prefix (``run.json``, without the
command and its presigned URLs, which are signed again for each attempt), because the
journal is no place for the task's environment or for URLs that open the bucket.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from offload import BackendError, Handle, Storage, StorageError
from offload_ecs import adoption, identity, launch
from offload_ecs.aws import Aws, error_code, error_message
from offload_ecs.config import EcsConfig


class TokenUsed(Exception):
    """``run_task`` answered ``ConflictException``: this attempt's token was used before."""


def run_once(aws: Aws, params: dict[str, Any]) -> tuple[str | None, str | None]:
    """One ``run_task``: the task ARN, or the failures that AWS gave instead."""
    from botocore.exceptions import ClientError

    try:
        response = aws.call("ecs", "run_task", **params)
    except ClientError as e:
        if error_code(e) == "ConflictException":
            raise TokenUsed(error_message(e)) from None
        raise BackendError(f"ecs: run_task refused the task: {error_message(e)}") from None
    tasks = response.get("tasks") or []
    if tasks:
        return str(tasks[0]["taskArn"]), None
    failures = response.get("failures") or [{"reason": "no task and no failure in the answer"}]
    text = "; ".join(f"{f.get('reason', '?')}" + (f" ({f['detail']})" if f.get("detail") else "") for f in failures)
    return None, text


def _handle(handle: Handle, state: Mapping[str, Any]) -> Handle:
    return Handle(handle.backend, handle.task_id, handle.io_path, dict(state))


def _save(storage: Storage, state: dict[str, Any], params: Mapping[str, Any], script: Mapping[str, Any]) -> None:
    """Keep the call for the next attempts in the temporal storage, once, without its command."""
    if state.get("run_key"):
        return
    key = launch.prefix(state) + "run.json"
    bare = launch.with_command(params, str(state["container"]), "")
    document = {"params": {k: v for k, v in bare.items() if k != "clientToken"}, "script": dict(script)}
    try:
        storage.put(key, json.dumps(document).encode("utf-8"))
    except StorageError as e:
        raise BackendError(f"ecs: cannot keep the run_task call for its next attempt: {e}") from None
    state["run_key"] = key


def attempt(aws: Aws, storage: Storage, config: EcsConfig, handle: Handle, params: dict[str, Any], script: Mapping[str, Any], attempts: int) -> Handle:
    """Try ``run_task`` (attempt number ``attempts``); the handle of the started task, or one that says when to try again."""
    state = dict(handle.state)
    token = identity.client_token(str(state["submission"]), attempts)
    try:
        arn, failure = run_once(aws, {**params, "clientToken": token})
    except TokenUsed as e:
        task = adoption.find_soon(aws, config, str(state["submission"]))
        if task is not None:
            return _handle(handle, adoption.adopted_state(state, task))
        arn, failure = None, f"{e} (and no task of this submission was found)"
    if arn is not None:
        return _handle(handle, launch.started_state(state, arn))
    limit = config.settings.max_run_task_attempts
    if attempts >= limit:
        state.update(run=None, final_error=f"run_task failed {attempts} time{'s' if attempts > 1 else ''}: {failure}")
        return _handle(handle, state)
    _save(storage, state, params, script)
    delay = launch.backoff(attempts, config.settings.run_task_retry_delay)
    note = f"run_task failed ({failure}); attempt {attempts + 1} of {limit} in {delay:.1f} s"
    state.update(run={"attempts": attempts, "retry_at": time.time() + delay}, notes=[*state.get("notes", []), note])
    return _handle(handle, state)


def retry(aws: Aws, storage: Storage, config: EcsConfig, handle: Handle, attempts: int) -> Handle:
    """Attempt ``attempts`` of the call kept by an earlier one, with newly signed URLs."""
    state = handle.state
    try:
        body = storage.get(state["run_key"])
    except StorageError as e:
        raise BackendError(f"ecs: cannot read the kept run_task call: {e}") from None
    document = json.loads(body)
    script = document["script"]
    params = launch.with_command(document["params"], str(state["container"]), launch.command(storage, config, state, script))
    return attempt(aws, storage, config, handle, params, script, attempts)

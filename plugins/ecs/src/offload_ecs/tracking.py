"""Polling: one ``describe_tasks`` per 100 tasks for every task of the run, one log query
per log group for all of them (:mod:`.logs`), timeouts.

A STOPPED task is reported finished once its end-of-log marker has been read (or,
failing that, after ``stopped_log_wait`` seconds), so its log is never cut short
(Digdag issue #1316). A task past its timeout is stopped with a reason that makes its
result fail with "timed out".
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from offload import BackendError, Handle, Status, Storage, StorageError, TaskState
from offload_ecs import logs, runtask, schedule
from offload_ecs.aws import Aws, error_code, error_message
from offload_ecs.config import EcsConfig
from offload_ecs.outcome import TIMEOUT_PREFIX, final, live_state, started

#: ``describe_tasks`` takes at most this many tasks per call.
BATCH = 100
#: ECS states in which a task's container has started and may write its log.
LOGGING = frozenset({"RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING"})


def describe(aws: Aws, handles: Sequence[Handle]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every started task of ``handles`` by ARN, and why any is missing; one call per 100 per cluster."""
    from botocore.exceptions import ClientError

    groups: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for handle in handles:
        arn = handle.state.get("task_arn")
        if arn:
            region = handle.state.get("region")
            groups[(handle.state["cluster"], None if region == aws.region else region)].append(arn)
    found: dict[str, dict[str, Any]] = {}
    missing: dict[str, str] = {}
    for (cluster, region), arns in groups.items():
        unique = list(dict.fromkeys(arns))
        for start in range(0, len(unique), BATCH):
            chunk = unique[start : start + BATCH]
            try:
                response = aws.call("ecs", "describe_tasks", region=region, cluster=cluster, tasks=chunk)
            except ClientError as e:
                raise BackendError(f"ecs: describe_tasks on cluster {cluster} failed: {error_message(e)}") from None
            for task in response.get("tasks") or []:
                found[task["taskArn"]] = task
            for failure in response.get("failures") or []:
                missing[str(failure.get("arn"))] = str(failure.get("reason") or "MISSING")
    return found, missing


def stop(aws: Aws, state: dict[str, Any], reason: str) -> None:
    from botocore.exceptions import ClientError

    region = state.get("region")
    try:
        aws.call("ecs", "stop_task", region=None if region == aws.region else region, cluster=state["cluster"], task=state["task_arn"], reason=reason)
    except ClientError as e:
        if error_code(e) != "InvalidParameterException":  # already gone
            raise BackendError(f"ecs: stop_task {state['task_arn']} failed: {error_message(e)}") from None


def _timed_out(state: Mapping[str, Any], now: float) -> bool:
    timeout = state.get("timeout")
    return timeout is not None and now - float(state["submitted_at"]) > float(timeout)


def _not_started(
    aws: Aws, storage: Storage, config: EcsConfig, handle: Handle, state: dict[str, Any], lines: list[str], now: float, cancelled: set[str]
) -> Status:
    """A task whose ``run_task`` is waiting to be tried again."""
    if state["marker"] in cancelled:
        state.update(run=None, final_state="cancelled")
        return Status(TaskState.CANCELLED, reason="cancelled", logs=lines, handle=_with(handle, state))
    if _timed_out(state, now):
        error = f"timed out after {float(state['timeout']):g} s before ECS started it"
        state.update(run=None, final_error=error)
        return Status(TaskState.FAILED, reason=error, logs=lines, handle=_with(handle, state))
    run = state["run"]
    if now < float(run["retry_at"]):
        return Status(TaskState.PENDING, logs=lines, handle=_with(handle, state))
    if cancel_requested(storage, state):
        state.update(run=None, final_state="cancelled")
        return Status(TaskState.CANCELLED, reason="cancelled", logs=lines, handle=_with(handle, state))
    new = runtask.retry(aws, storage, config, _with(handle, state), int(run["attempts"]) + 1)
    state = dict(new.state)
    lines.extend(f"offload: {note}" for note in state.pop("notes", None) or [])
    state["notes"] = []
    if state.get("final_error"):
        return Status(TaskState.FAILED, reason=state["final_error"], logs=lines, handle=_with(handle, state))
    return Status(TaskState.PENDING, logs=lines, handle=_with(handle, state))


def cancel_marker(state: dict[str, Any]) -> str:
    return str(state["input_key"]).rsplit("/", 1)[0] + "/cancelled"


def cancel_requested(storage: Storage, state: dict[str, Any]) -> bool:
    """Whether a driver recorded a cancel for this task before ``run_task`` was tried again
    (an unreadable marker counts as none: the next poll looks again)."""
    try:
        return storage.exists(cancel_marker(state))
    except StorageError:
        return False


def _with(handle: Handle, state: dict[str, Any]) -> Handle:
    return Handle(handle.backend, handle.task_id, handle.io_path, state)


def _urgent(state: Mapping[str, Any], now: float, cancelled: set[str]) -> bool:
    """Described at every poll: stopping, cancelled, its end-of-log marker seen, or past its timeout."""
    if state.get("stopped_seen_at") is not None or state.get("marker_seen") or state["task_arn"] in cancelled:
        return True
    return _timed_out(state, now) and not state.get("timeout_stopped")


def _running(
    aws: Aws, config: EcsConfig, handle: Handle, state: dict[str, Any], lines: list[str], task: dict[str, Any] | None, now: float, log: logs.Update | None
) -> Status:
    """A started task that has not stopped (or was not described in this poll)."""
    if task is not None:
        changed = task.get("lastStatus") != state.get("last_status")
        state["last_status"] = task.get("lastStatus")
        if _timed_out(state, now) and task.get("desiredStatus") != "STOPPED" and not state.get("timeout_stopped"):
            reason = f"{TIMEOUT_PREFIX} after {float(state['timeout']):g} s"
            stop(aws, state, reason)
            state["timeout_stopped"] = True
            changed = True
            lines.append(f"offload: {reason[len('offload: ') :]}: stopping the task")
        schedule.after_describe(state, now, changed)
    if log is not None:  # a marker seen makes the task urgent: described at the next poll
        lines.extend(log[0])
        state.update(log[1])
    return Status(live_state({"lastStatus": state.get("last_status")}), logs=lines, handle=_with(handle, state))


def _stopped(config: EcsConfig, handle: Handle, state: dict[str, Any], lines: list[str], task: dict[str, Any], now: float, log: logs.Update | None) -> Status:
    """A STOPPED task: read its log to the end-of-log marker (or a bounded wait), then its outcome."""
    state["last_status"] = "STOPPED"
    if state.get("stopped_seen_at") is None:
        state["stopped_seen_at"] = now
    has_log = bool(state.get("log_stream")) and started(task)
    if log is not None:
        lines.extend(log[0])
        state.update(log[1])
    waited = now - float(state["stopped_seen_at"])
    wait = config.settings.stopped_log_wait
    if has_log and not state.get("marker_seen"):
        if waited < wait:
            return Status(TaskState.RUNNING, logs=lines, handle=_with(handle, state))
        lines.append(f"offload: the end of the log did not show within {wait:g} s after the task stopped; the log may be incomplete")
    result, code, error = final(task, str(state["container"]))
    return Status(result, exit_code=code, reason=error, logs=lines, handle=_with(handle, state))


def _one(
    aws: Aws,
    storage: Storage,
    config: EcsConfig,
    handle: Handle,
    found: dict[str, dict[str, Any]],
    missing: dict[str, str],
    now: float,
    cancelled: set[str],
    log: logs.Update | None,
) -> Status:
    arn = handle.state.get("task_arn")
    if arn and log is None and arn not in found and arn not in missing and not _settled(handle.state):
        # Neither described nor read in this poll: the same handle, so nothing is copied or journaled.
        return Status(live_state({"lastStatus": handle.state.get("last_status")}), handle=handle)
    state = dict(handle.state)
    lines = [f"offload: {note}" for note in state.get("notes") or []]
    state["notes"] = []
    if state.get("final_error"):
        return Status(TaskState.FAILED, reason=state["final_error"], logs=lines, handle=_with(handle, state))
    if state.get("final_state") == "cancelled":
        return Status(TaskState.CANCELLED, reason="cancelled", logs=lines, handle=_with(handle, state))
    if not arn:
        return _not_started(aws, storage, config, handle, state, lines, now, cancelled)
    task = found.get(arn)
    if arn in missing:
        reason = f"ECS no longer knows task {arn} ({missing.get(arn, 'MISSING')})"
        return Status(TaskState.LOST, reason=reason, logs=lines, handle=_with(handle, state))
    if task is not None and task.get("lastStatus") == "STOPPED":
        return _stopped(config, handle, state, lines, task, now, log)
    return _running(aws, config, handle, state, lines, task, now, log)


def _settled(state: Mapping[str, Any]) -> bool:
    """Has a note to tell or an outcome decided without AWS."""
    return bool(state.get("notes") or state.get("final_error") or state.get("final_state"))


def _reads_log(state: Mapping[str, Any], task: Mapping[str, Any] | None) -> bool:
    """Whether the task's log is followed: it has started and not stopped, or it has stopped
    and its end-of-log marker has not been read yet."""
    if not state.get("log_stream"):
        return False
    status = task.get("lastStatus") if task is not None else state.get("last_status")
    if status in LOGGING:
        return True
    return status == "STOPPED" and task is not None and started(task) and not state.get("marker_seen")


def poll(aws: Aws, storage: Storage, config: EcsConfig, handles: Sequence[Handle], cancelled: set[str], reader: logs.Reader | None = None) -> list[Status]:
    """The status of each handle, in order.

    Tasks are described in batches of 100, on the schedule of :mod:`.schedule`: a task
    that is stopping, timed out or cancelled at every poll; one that has changed soon
    again; one that has not, less and less often, staggered, and at least every
    ``schedule.MAX_WAIT`` seconds; at most ``schedule.DESCRIBES_PER_POLL`` beyond those
    that must be. The logs of all running tasks (and of stopped ones until their
    end-of-log marker) are read by ``reader`` in one query per log group.
    """
    now, began = time.time(), time.monotonic()
    states = [h.state for h in handles]
    picked = schedule.pick_describes(enumerate(states), now, lambda state: _urgent(state, now, cancelled))
    wanted = [handles[i] for i in picked]
    found, missing = describe(aws, wanted)
    for handle in wanted:
        arn = handle.state["task_arn"]
        if arn not in found and arn not in missing:
            missing[arn] = "MISSING"
    following = [(i, s) for i, s in enumerate(states) if s.get("task_arn") and s["task_arn"] not in missing and _reads_log(s, found.get(s["task_arn"]))]
    updates = (reader or logs.Reader()).read(aws, following, began)
    return [_one(aws, storage, config, h, found, missing, now, cancelled, updates.get(i)) for i, h in enumerate(handles)]

"""Collecting a finished task's result and output, and cancelling a task."""

from __future__ import annotations

import time
from typing import Any

from offload import BackendError, Handle, Result, Storage, StorageError, StorageNotFound, TaskState
from offload.remote import extract_archive
from offload.remote.script import UPLOAD_FAILED
from offload_ecs.aws import Aws
from offload_ecs.outcome import CANCEL_REASON, final, timestamp
from offload_ecs.tracking import cancel_marker, describe, stop


def _download(storage: Storage, state: dict[str, Any], dest: str) -> bool:
    """Unpack the io archive the task uploaded into ``dest``; ``False`` when there is none."""
    try:
        data = storage.get(state["output_key"])
    except StorageNotFound:
        return False
    except StorageError as e:
        raise BackendError(f"ecs: cannot download the task's output: {e}") from None
    try:
        extract_archive(data, dest)
    except Exception as e:  # noqa: BLE001 - a broken archive is the task's problem, reported as such
        raise BackendError(f"ecs: the task's output archive cannot be unpacked: {e}") from None
    return True


def _cleanup(storage: Storage, state: dict[str, Any]) -> None:
    """Delete what the task no longer needs; the output archive stays so collecting again works."""
    for key in (state.get("input_key"), state.get("env_key"), state.get("run_key")):
        if not key:
            continue
        try:
            storage.delete(key)
        except StorageError:
            pass  # a lifecycle rule on the prefix takes care of leftovers


def collect(aws: Aws, storage: Storage, handle: Handle) -> Result:
    state = dict(handle.state)
    submitted = float(state.get("submitted_at") or time.time())
    if state.get("final_error") or state.get("final_state") == "cancelled":
        _cleanup(storage, state)
        if state.get("final_state") == "cancelled":
            return Result(TaskState.CANCELLED, error="cancelled", started_at=submitted, finished_at=time.time())
        return Result(TaskState.FAILED, error=str(state["final_error"]), started_at=submitted, finished_at=time.time())
    arn = state.get("task_arn")
    if not arn:
        raise BackendError(f"ecs: task {handle.task_id} has not started yet: poll it until it finishes")
    found, missing = describe(aws, [handle])
    task = found.get(arn)
    if task is None:
        return Result(TaskState.LOST, error=f"ECS no longer knows task {arn} ({missing.get(arn, 'MISSING')})", started_at=submitted)
    if task.get("lastStatus") != "STOPPED":
        raise BackendError(f"ecs: task {arn} is still {task.get('lastStatus')}: poll it until it finishes")
    state_, code, error = final(task, str(state["container"]))
    got_output = _download(storage, state, handle.io_path)
    if not got_output and state_ is TaskState.SUCCEEDED:
        state_, code = TaskState.FAILED, code
        error = "the task exited 0 but sent no output back (the upload through the presigned URL failed: see the task's log)"
    elif not got_output and code == UPLOAD_FAILED:
        error = (
            f"the command exited 0 but its output could not be uploaded, so the container exited {UPLOAD_FAILED} "
            "(enable_curl_fail_opt_on_uploads: see the task's log)"
        )
    _cleanup(storage, state)
    return Result(
        state_,
        exit_code=code,
        error=error,
        started_at=timestamp(task.get("startedAt")) or submitted,
        finished_at=timestamp(task.get("stoppedAt")) or time.time(),
    )


def cancel(aws: Aws, storage: Storage, handle: Handle, cancelled: set[str]) -> None:
    state = dict(handle.state)
    if state.get("task_arn"):
        stop(aws, state, CANCEL_REASON)
        cancelled.add(str(state["task_arn"]))  # described at every poll from now on
        return
    cancelled.add(str(state["marker"]))
    try:  # a driver that resumes this handle must not start the task either
        storage.put(cancel_marker(state), b"cancelled\n")
    except StorageError as e:
        raise BackendError(f"ecs: cannot record the cancellation of {handle.task_id}: {e}") from None

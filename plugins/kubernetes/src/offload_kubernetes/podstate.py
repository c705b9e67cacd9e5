"""What a Job and its pod mean for offload: waiting, running, or finished with which reason.

Every way a pod ends is a final state with its reason, never a hang and never a success
by mistake: a non-zero exit (with the container's reason, ``OOMKilled``), eviction, the
pod's deadline (the task's timeout), the Job's deadline, and a pod or Job deleted by
someone else. A pod that has not started is *pending*, with the reason it waits
(``Unschedulable``, ``ErrImagePull``, ``CreateContainerConfigError``...), not crashed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from offload import TaskState
from offload.remote import SETUP_FAILED
from offload_kubernetes.jobspec import CONTAINER
from offload_kubernetes.logs import parse_time_ns

#: Waiting reasons that will not go away by waiting: the task fails at once.
HOPELESS = {"InvalidImageName", "ErrImageNeverPull"}


@attrs.frozen
class Ending:
    """How a pod (or its Job) ended."""

    state: TaskState
    exit_code: int | None
    error: str | None
    started_at: float | None = None
    finished_at: float | None = None


def _container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((c for c in statuses if c.get("name") == CONTAINER), statuses[0] if statuses else {})


def waiting_reason(pod: Mapping[str, Any]) -> str | None:
    """Why a pod that has not started waits: ``Reason: message``, or ``None`` when it is just being made."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason"):
            return f"{cond['reason']}: {cond.get('message') or ''}".rstrip(": ")
    waiting = (_container(pod).get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason")
    if reason and reason != "ContainerCreating":
        return f"{reason}: {waiting.get('message') or ''}".rstrip(": ")
    return None


def started(pod: Mapping[str, Any]) -> bool:
    """Whether the container runs or has run (so its log can be read)."""
    state = _container(pod).get("state") or {}
    return "running" in state or "terminated" in state


def terminated(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _time(value: Any) -> float | None:
    if not value:
        return None
    return parse_time_ns(str(value)) / 1e9


def ending(pod: Mapping[str, Any], timeout: float | None) -> Ending:
    """The outcome of a pod in phase Succeeded or Failed."""
    status = pod.get("status") or {}
    done = (_container(pod).get("state") or {}).get("terminated") or {}
    code = done.get("exitCode")
    code = int(code) if code is not None else None
    times = (_time(done.get("startedAt")) or _time(status.get("startTime")), _time(done.get("finishedAt")))
    reason, message = status.get("reason"), status.get("message")
    if reason == "DeadlineExceeded":
        limit = f" after {timeout:g} s" if timeout else ""
        return Ending(TaskState.FAILED, code, f"timed out{limit} (the pod's deadline: {message or 'DeadlineExceeded'})", *times)
    if reason == "Evicted":
        return Ending(TaskState.FAILED, code, f"the pod was evicted: {message or 'Evicted'}", *times)
    if status.get("phase") == "Succeeded" and code in (0, None):
        return Ending(TaskState.SUCCEEDED, 0, None, *times)
    if code == 0 and status.get("phase") == "Failed":
        return Ending(TaskState.FAILED, 0, f"the pod failed: {reason or 'Failed'}: {message or ''}".rstrip(": "), *times)
    parts = []
    if code is not None:
        parts.append(f"exit code {code}" + (" (offload could not set up the task: see its log)" if code == SETUP_FAILED else ""))
    else:
        parts.append("the container ended without an exit code")
    if done.get("reason") and done.get("reason") not in ("Error", "Completed"):
        parts.append(f"container: {done['reason']}" + (f" ({done['message']})" if done.get("message") else ""))
    if reason:
        parts.append(f"pod: {reason}: {message or ''}".rstrip(": "))
    return Ending(TaskState.FAILED, code, "; ".join(parts), *times)


def job_failure(job: Mapping[str, Any]) -> str | None:
    """Why the Job failed when no pod tells (its deadline passed before the pod started, ...)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return f"the Job failed: {cond.get('reason') or 'Failed'}: {cond.get('message') or ''}".rstrip(": ")
    return None

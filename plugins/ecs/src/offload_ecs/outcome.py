"""What an ECS task description means for offload: its state, exit code and reason.

STOPPED with exit code 0 succeeds; a non-zero code fails with the container's
``reason`` and the task's ``stopCode`` / ``stoppedReason``; STOPPED without a code
(never started, ``TaskFailedToStart``, killed by the platform) fails with AWS's reason
(Digdag issue #1724, Airflow's REMOVED). A task that offload stopped says why: it was
cancelled or it timed out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from offload import TaskState
from offload.remote import SETUP_FAILED

CANCEL_REASON = "offload: cancelled"
TIMEOUT_PREFIX = "offload: timed out"

_PENDING = {"PROVISIONING", "PENDING", "ACTIVATING"}


def container_of(task: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    containers = task.get("containers") or []
    return next((c for c in containers if c.get("name") == name), containers[0] if containers else {})


def started(task: Mapping[str, Any]) -> bool:
    return task.get("startedAt") is not None and task.get("stopCode") != "TaskFailedToStart"


def live_state(task: Mapping[str, Any]) -> TaskState:
    """PENDING or RUNNING for a task that has not stopped (``lastStatus`` != STOPPED)."""
    return TaskState.PENDING if task.get("lastStatus") in _PENDING else TaskState.RUNNING


def final(task: Mapping[str, Any], container: str) -> tuple[TaskState, int | None, str | None]:
    """State, exit code and error of a STOPPED task."""
    reason = str(task.get("stoppedReason") or "")
    stop_code = task.get("stopCode")
    ctr = container_of(task, container)
    code = ctr.get("exitCode")
    code = int(code) if code is not None else None
    if reason.startswith(CANCEL_REASON):
        return TaskState.CANCELLED, code, "cancelled"
    if reason.startswith(TIMEOUT_PREFIX):
        return TaskState.FAILED, code, reason[len("offload: ") :]
    if code == 0:
        return TaskState.SUCCEEDED, 0, None
    parts = []
    if code is not None:
        parts.append(f"exit code {code}" + (" (offload could not set up the task: see its log)" if code == SETUP_FAILED else ""))
    else:
        parts.append("the task stopped without an exit code" + ("" if started(task) else " and never started"))
    if ctr.get("reason"):
        parts.append(f"container: {ctr['reason']}")
    if stop_code or reason:
        parts.append(f"{stop_code or 'stopped'}: {reason}".rstrip(": "))
    return TaskState.FAILED, code, "; ".join(parts)


def timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None

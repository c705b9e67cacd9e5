"""How a stopped container's state and offload's markers become a task's outcome."""

from __future__ import annotations

from typing import Any

import attrs

from offload import Handle, Result, TaskState
from offload_docker import markers
from offload_docker.logs import parse_engine_time


@attrs.frozen
class Outcome:
    state: TaskState
    exit_code: int | None
    error: str | None
    started_at: float | None = None
    finished_at: float | None = None

    def result(self) -> Result:
        return Result(
            state=self.state,
            exit_code=self.exit_code,
            error=self.error,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )

    def to_state(self) -> dict[str, Any]:
        return attrs.asdict(self, value_serializer=lambda _i, _a, v: v.value if isinstance(v, TaskState) else v)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            state=TaskState(data["state"]),
            exit_code=data.get("exit_code"),
            error=data.get("error"),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
        )


def marker(handle: Handle, kind: str) -> str:
    return markers.name(str(handle.state.get("submission", "")), kind)


def cancelled(handle: Handle) -> bool:
    return markers.exists(handle.io_path, marker(handle, markers.CANCELLED))


def engine_times(state: dict[str, Any]) -> dict[str, float | None]:
    """``StartedAt`` and ``FinishedAt`` as epoch seconds, never finishing before starting.

    The engine takes the two times from different clocks' readings (the runtime's exit
    event, the daemon's start): it once reported a finish 1 ms before the start.
    """
    started = parse_engine_time(state.get("StartedAt"))
    finished = parse_engine_time(state.get("FinishedAt"))
    if started is not None and finished is not None and finished < started:
        finished = started
    return {"started_at": started, "finished_at": finished}


def stopped_by_cancel(handle: Handle, state: dict[str, Any]) -> bool:
    """Whether a cancel stopped this container (not merely came after it finished).

    The cancel marker exists only when the stop signal reached a running container;
    an exit 0 before the marker was written (the signal raced the exit) still counts
    as the task's own.
    """
    data = markers.read(handle.io_path, marker(handle, markers.CANCELLED))
    if data is None:
        return False
    if state.get("Status") == "created":
        return True
    finished = parse_engine_time(state.get("FinishedAt"))
    return not (state.get("ExitCode") == 0 and finished is not None and finished < float(data.get("at", 0)))


def from_container(handle: Handle, state: dict[str, Any]) -> Outcome:
    """The outcome of a container that is no longer running."""
    task = f"task {handle.task_id}"
    code = state.get("ExitCode")
    times = engine_times(state)
    if stopped_by_cancel(handle, state):
        if state.get("Status") == "created":
            return Outcome(TaskState.CANCELLED, None, f"{task}: cancelled before it started")
        return Outcome(TaskState.CANCELLED, code, f"{task}: cancelled", **times)
    if markers.exists(handle.io_path, marker(handle, markers.TIMED_OUT)):
        timeout = handle.state.get("timeout")
        return Outcome(TaskState.FAILED, code, f"{task}: timed out after {timeout:g} s", **times)
    if state.get("OOMKilled"):
        return Outcome(TaskState.FAILED, code, f"{task}: killed for using more memory than its limit (exit code {code})", **times)
    if state.get("Error"):
        return Outcome(TaskState.FAILED, code, f"{task}: the container failed: {state['Error']}", **times)
    if code == 0:
        return Outcome(TaskState.SUCCEEDED, 0, None, **times)
    return Outcome(TaskState.FAILED, code, f"{task}: command exited with code {code}", **times)


def preparation_failed(handle: Handle) -> Outcome:
    """The outcome of a task whose image could not be prepared, or that was cancelled first."""
    if cancelled(handle):
        return Outcome(TaskState.CANCELLED, None, f"task {handle.task_id}: cancelled before it started")
    return Outcome(TaskState.FAILED, None, str(handle.state.get("error") or f"task {handle.task_id}: failed"))


def saved(handle: Handle) -> Outcome | None:
    """The outcome recorded when the result was collected (the container is gone since)."""
    data = markers.read(handle.io_path, marker(handle, markers.RESULT))
    return Outcome.from_state(data) if data and "state" in data else None


def save(handle: Handle, outcome: Outcome) -> None:
    markers.write(handle.io_path, marker(handle, markers.RESULT), outcome.to_state())

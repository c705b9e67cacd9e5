"""A finished task's successor starts at once: the run loop never waits between collecting a
task and submitting the next one.

A recording backend, registered as any third-party plugin is, logs every call the loop
makes (submit, poll, wait, collect); a sleep of the loop is logged too, and does not sleep.
Its tasks finish on their second poll (those named ``slow...`` on their fifth) and its
``wait`` returns at once, so the order of calls is the whole story: no timing is asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

import offload
from offload import Handle, Result, Status, TaskRequest, TaskState

CALLS: list[str] = []


def task_of(handle: Handle) -> str:
    """The task's own name: ``b`` for ``+flow+b``."""
    return str(handle.state["name"]).rsplit("+", 1)[-1]


class RecordingBackend(offload.Backend):
    name: ClassVar[str] = "recording"

    def submit(self, request: TaskRequest) -> Handle:
        handle = Handle(self.name, request.task_id, request.io_path, {"polls": 0, "name": request.labels["offload.task-name"]})
        CALLS.append(f"submit {task_of(handle)}")
        return handle

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        CALLS.append("poll " + ",".join(task_of(h) for h in handles))
        statuses = []
        for handle in handles:
            polls = int(handle.state["polls"]) + 1
            state = TaskState.SUCCEEDED if polls >= (5 if task_of(handle).startswith("slow") else 2) else TaskState.RUNNING
            statuses.append(Status(state, exit_code=0 if state.finished else None, handle=handle.with_state(polls=polls)))
        return statuses

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        CALLS.append("wait")

    def collect(self, handle: Handle) -> Result:
        CALLS.append(f"collect {task_of(handle)}")
        return Result(state=TaskState.SUCCEEDED, exit_code=0)

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        CALLS.append(f"cancel {task_of(handle)}")


class WokenBackend(RecordingBackend):
    """Another backend whose tasks wake it: its wait returns at once, as on an event."""

    name: ClassVar[str] = "woken"

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        CALLS.append(f"wait woken {timeout:g}")


class SleepyBackend(RecordingBackend):
    """A backend that cannot be woken: it keeps ``Backend.wait``, which sleeps."""

    name: ClassVar[str] = "sleepy"
    wait = offload.Backend.wait


class Plugin:
    @offload.hookimpl
    def offload_register_backends(self, register: Callable[[type[offload.Backend]], None]) -> None:
        register(RecordingBackend)
        register(WokenBackend)
        register(SleepyBackend)


@pytest.fixture(autouse=True)
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls, a sleep of the loop (``time.sleep``) among them: it does not sleep."""
    CALLS.clear()
    monkeypatch.setattr(time, "sleep", lambda seconds: CALLS.append("sleep"))
    return CALLS


def executor() -> offload.Executor:
    pm = offload.make_plugin_manager((Plugin(),), disabled={"docker", "ecs"})
    return offload.Executor({"command_executor": {"type": "recording"}}, plugin_manager=pm)


def run(tmp_path: Path, flow: str) -> offload.RunOutcome:
    (tmp_path / "flow.dig").write_text(flow)
    with executor() as ex:
        return offload.run_workflow(str(tmp_path / "flow.dig"), ex)


def between(calls: list[str], first: str, then: str) -> list[str]:
    return calls[calls.index(first) + 1 : calls.index(then)]


def test_the_next_task_of_a_chain_is_submitted_before_the_loop_waits_again(tmp_path: Path, calls: list[str]) -> None:
    outcome = run(tmp_path, "+a:\n  sh>: echo a\n+b:\n  sh>: echo b\n+c:\n  sh>: echo c\n")
    assert outcome.state == "succeeded"
    assert between(calls, "collect a", "submit b") == []
    assert between(calls, "collect b", "submit c") == []
    assert calls[-1] == "collect c"  # nothing is waited for once the last task is collected


def test_a_successor_starts_at_once_while_other_tasks_still_run(tmp_path: Path, calls: list[str]) -> None:
    flow = "+p:\n  _parallel: true\n  +x:\n    +x1:\n      sh>: echo 1\n    +x2:\n      sh>: echo 2\n  +y:\n    +slow:\n      sh>: echo y\n"
    assert run(tmp_path, flow).state == "succeeded"
    assert calls.index("collect x1") < calls.index("collect slow")
    assert between(calls, "collect x1", "submit x2") == []


def test_each_wait_is_for_a_task_that_has_not_finished(tmp_path: Path, calls: list[str]) -> None:
    run(tmp_path, "+a:\n  sh>: echo a\n+b:\n  sh>: echo b\n")
    # submit, wait, poll (running), wait, poll (finished), collect: one wait per poll, none after a collect
    assert calls == ["submit a", "wait", "poll a", "wait", "poll a", "collect a", "submit b", "wait", "poll b", "wait", "poll b", "collect b"]


def test_wait_any_with_nothing_to_wait_for_returns_without_sleeping(calls: list[str]) -> None:
    with executor() as ex:
        ex.wait_any([], 5.0)
    assert calls == []


def handles(*backends: str) -> list[Handle]:
    return [Handle(name, f"t{i}", "/nowhere", {"polls": 0, "name": f"+flow+t{i}"}) for i, name in enumerate(backends)]


def test_with_several_backends_the_one_that_can_be_woken_waits_for_all(calls: list[str]) -> None:
    with executor() as ex:
        ex.wait_any(handles("sleepy", "woken", "sleepy"), 2.0)
    assert calls == ["wait woken 2"]  # not a sleep through its tasks' ends; the sleepy one is polled after


def test_backends_that_can_be_woken_take_turns_and_a_wake_ends_the_wait(calls: list[str]) -> None:
    with executor() as ex:
        ex.wait_any(handles("woken", "recording"), 2.0)
    assert calls == ["wait woken 0.05"]  # its turn, cut short by a wake


def test_backends_that_cannot_be_woken_sleep(calls: list[str]) -> None:
    with executor() as ex:
        ex.wait_any(handles("sleepy", "sleepy"), 2.0)  # one backend: its own wait, which sleeps
        ex.wait_any([], 2.0)
    assert calls == ["sleep"]

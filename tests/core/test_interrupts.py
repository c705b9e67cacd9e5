"""Ctrl-C during a run, through ``offload.run_workflow`` and a backend that plays a slow engine.

The backend is a third-party plugin registered the way any other is; signals are real
(``os.kill`` of this process), delivered while the run is in its poll loop.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

import offload
from offload import Handle, Result, Status, TaskRequest, TaskState

LIMIT = 60.0  # only keeps a broken build from hanging forever


class Engine:
    """What the scripted backend does; each test sets ``poll_state``."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.cancels: list[float] = []
        self.hang_until_cancel = False
        self.finish_on_cancel: TaskState | None = TaskState.CANCELLED
        self.started = time.monotonic()

    def poll(self) -> TaskState:
        self.events.append("poll-start")
        if self.hang_until_cancel and not self.cancels:
            time.sleep(LIMIT)  # a hung engine: only a signal gets the driver out
            self.events.append("poll-end")
        if time.monotonic() - self.started > LIMIT:
            return TaskState.LOST
        if self.cancels and self.finish_on_cancel is not None:
            return self.finish_on_cancel
        return TaskState.RUNNING


ENGINE = Engine()


class ScriptedBackend(offload.Backend):
    name: ClassVar[str] = "scripted"

    def submit(self, request: TaskRequest) -> Handle:
        ENGINE.events.append("submit")
        return Handle(self.name, request.task_id, request.io_path, {})

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        return [Status(ENGINE.poll()) for _ in handles]

    def collect(self, handle: Handle) -> Result:
        state = ENGINE.poll()
        return Result(state=state, exit_code=0 if state is TaskState.SUCCEEDED else None, error=None if state is TaskState.SUCCEEDED else state.value)

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        ENGINE.events.append(f"cancel grace={grace:g}")
        ENGINE.cancels.append(grace)


class Plugin:
    @offload.hookimpl
    def offload_register_backends(self, register: Callable[[type[offload.Backend]], None]) -> None:
        register(ScriptedBackend)


@pytest.fixture(autouse=True)
def engine() -> Engine:
    global ENGINE
    ENGINE = Engine()
    return ENGINE


def run(project: Path, events: list[tuple[str, str]]) -> offload.RunOutcome:
    pm = offload.make_plugin_manager((Plugin(),), disabled={"docker", "ecs"})
    with offload.Executor({"command_executor": {"type": "scripted"}}, plugin_manager=pm) as executor:
        return offload.run_workflow(str(project / "flow.dig"), executor, on_event=lambda t, m: events.append((t, m)))


def interrupt_when(*conditions: Callable[[], bool]) -> threading.Thread:
    """Send SIGINT to this process once for each condition, as soon as it holds."""

    def send() -> None:
        deadline = time.monotonic() + LIMIT
        for condition in conditions:
            while not condition() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "flow.dig").write_text("+a:\n  sh>: echo a\n")
    return tmp_path


def test_ctrl_c_cuts_a_hung_poll_short_and_cancels(project: Path, engine: Engine) -> None:
    engine.hang_until_cancel = True
    interrupt_when(lambda: "poll-start" in engine.events)
    events: list[tuple[str, str]] = []
    outcome = run(project, events)
    assert outcome.state == "cancelled"
    # the cancel went out while the engine still had not answered the poll
    assert engine.events.index("cancel grace=10") < (engine.events.index("poll-end") if "poll-end" in engine.events else len(engine.events))
    assert "poll-end" not in engine.events


def test_a_task_that_finished_as_ctrl_c_came_keeps_its_result_and_is_not_run_again(project: Path, engine: Engine) -> None:
    engine.finish_on_cancel = TaskState.SUCCEEDED
    interrupt_when(lambda: "poll-start" in engine.events)
    outcome = run(project, [])
    assert outcome.state == "cancelled"
    assert {n.task.name: n.state for n in outcome.root.operator_nodes()} == {"+flow+a": "succeeded"}
    events: list[tuple[str, str]] = []
    again = run(project, events)
    assert again.state == "succeeded" and again.resumed
    assert engine.events.count("submit") == 1
    assert any("skipped: succeeded" in message for _, message in events)


def test_second_ctrl_c_kills_at_once_and_a_third_stops_waiting(project: Path, engine: Engine) -> None:
    engine.finish_on_cancel = None  # the engine never confirms that the task stopped
    interrupt_when(lambda: "poll-start" in engine.events, lambda: len(engine.cancels) >= 1, lambda: len(engine.cancels) >= 2)
    events: list[tuple[str, str]] = []
    outcome = run(project, events)
    assert outcome.state == "cancelled"
    assert engine.cancels == [10.0, 0.0]
    assert any("stopped waiting for 1 task(s)" in message and "+flow+a" in message for _, message in events)

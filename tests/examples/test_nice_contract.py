"""The example backend examples/offload-nice keeps the contract, and what it promises besides."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import offload
from offload.testing import BackendContract, make_request, wait_for, wait_until_running
from offload_nice import NiceTaskConfig

STAT_NICE = "cut -d' ' -f19 /proc/$$/stat"  # the shell's own nice level
OWN_LEVEL = os.getpriority(os.PRIO_PROCESS, 0)  # a task cannot run at a lower level than its driver


def nice_executor(**section: Any) -> offload.Executor:
    return offload.Executor({"command_executor": {"type": "nice", "nice": section}})


class TestNiceContract(BackendContract):
    backend_name = "nice"

    @pytest.fixture
    def executor_factory(self) -> Callable[[], offload.Executor]:
        return nice_executor

    @pytest.fixture
    def task_config(self) -> dict[str, Any]:
        return {"nice": {"level": 5}}


def run(executor: offload.Executor, request: offload.TaskRequest) -> tuple[offload.Result, list[str], offload.Handle]:
    handle = executor.submit(request, backend="nice")
    result, logs = wait_for(executor, handle)
    return result, logs, handle


@pytest.mark.parametrize(("section", "task", "expected"), [({}, {"level": 5}, "5"), ({"default_level": 12}, {}, "12"), ({}, {}, "10")])
def test_the_task_runs_at_its_level_or_the_default(tmp_path: Path, section: dict[str, Any], task: dict[str, Any], expected: str) -> None:
    with nice_executor(**section) as executor:
        result, logs, _ = run(executor, make_request(tmp_path, STAT_NICE, {"nice": task}))
    assert result.ok, logs
    assert logs == [str(max(int(expected), OWN_LEVEL))]


@pytest.mark.skipif(shutil.which("ionice") is None, reason="ionice is not installed")
@pytest.mark.parametrize(("io_class", "expected"), [("idle", "idle"), ("best-effort", "best-effort: prio 7")])
def test_the_task_runs_in_its_io_class(tmp_path: Path, io_class: str, expected: str) -> None:
    with nice_executor() as executor:
        result, logs, _ = run(executor, make_request(tmp_path, "ionice -p $$", {"nice": {"io_class": io_class}}))
    assert result.ok, logs
    assert logs == [expected]


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] in ("Z", "X")


def _zombie_child_of_mine(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state, parent = stat[stat.rfind(")") + 2 :].split()[:2]
    return state == "Z" and int(parent) == os.getpid()


def test_the_wrapper_is_reaped_once_collected(tmp_path: Path) -> None:
    with nice_executor() as executor:
        for script in ("exit 0", "exit 3"):
            result, _, handle = run(executor, make_request(tmp_path, script, {"nice": {}}))
            assert result.state in (offload.TaskState.SUCCEEDED, offload.TaskState.FAILED)
            pid, deadline = int(handle.state["pid"]), time.monotonic() + 30
            while not _gone(pid):  # the wrapper exits right after writing the exit code
                assert time.monotonic() < deadline, "the wrapper outlived its task"
                time.sleep(0.01)
            assert not _zombie_child_of_mine(pid)


def test_cancel_returns_at_once_and_kills_a_task_that_ignores_sigterm_after_the_grace_period(tmp_path: Path) -> None:
    script = "trap '' TERM; sh -c 'echo $$ > \"$OFFLOAD_IO_DIR/child.pid\"; exec sleep 120' & wait; wait; echo survived"
    request = make_request(tmp_path, script, {"nice": {}})
    child_pid_file = Path(request.io_path, "child.pid")
    with nice_executor() as executor:
        handle = wait_until_running(executor, executor.submit(request, backend="nice"))
        deadline = time.monotonic() + 60
        while not child_pid_file.exists() or not child_pid_file.read_text().strip():
            assert time.monotonic() < deadline, "the task never started its child"
            (status,) = executor.poll([handle])
            handle = status.handle or handle
            executor.wait_any([handle], 0.05)
        child = int(child_pid_file.read_text())
        asked = time.monotonic()
        executor.cancel(handle, grace=3)
        assert time.monotonic() - asked < 1.0, "cancel must not wait for the task"
        (status,) = executor.poll([handle])
        assert status.state is offload.TaskState.RUNNING and not _gone(child), "SIGTERM is ignored: alive until the grace period ends"
        result, logs = wait_for(executor, status.handle or handle, limit=60)
    assert result.state is offload.TaskState.CANCELLED
    assert time.monotonic() - asked >= 3
    assert _gone(child)
    assert "survived" not in logs


def test_a_task_without_a_nice_section_runs_on_the_next_backend(tmp_path: Path) -> None:
    request = make_request(tmp_path, "true", {})
    with offload.Executor({"command_executor": {"order": ["nice", "local"]}}) as executor:
        selection = executor.select(request)
    assert selection.backend == "local"
    assert selection.attempts[0].backend == "nice"
    assert selection.attempts[0].reasons == (f"task {request.task_id}: nice: not set for this task (nice: {{}} runs it at the default level)",)


def test_the_settings_are_parsed_once_into_their_attrs_type(tmp_path: Path) -> None:
    request = make_request(tmp_path, "true", {"nice": {"level": "3", "io_class": "best-effort"}})
    with offload.Executor({"command_executor": {"order": ["nice", "local"]}}) as executor:
        selection = executor.select(request)
    assert selection.backend == "nice"
    assert selection.settings == NiceTaskConfig(level=3, io_class="best-effort")


@pytest.mark.parametrize(
    ("section", "where", "message"),
    [
        ({"level": 42}, "nice.level", "must be 0 to 19, got 42"),
        ({"level": -1}, "nice.level", "must be 0 to 19, got -1"),
        ({"io_class": "realtime"}, "nice.io_class", "must be idle or best-effort, got 'realtime'"),
        ({"lvl": 3}, "nice", "unknown key 'lvl' (known keys: level, io_class)"),
    ],
)
def test_a_wrong_setting_is_fatal_with_its_key_path(tmp_path: Path, section: dict[str, Any], where: str, message: str) -> None:
    request = make_request(tmp_path, "true", {"nice": section})
    with offload.Executor({"command_executor": {"order": ["nice", "local"]}}) as executor:
        selection = executor.select(request)
    assert selection.backend is None
    assert [str(p) for p in selection.fatal] == [f"task {request.task_id}: {where}: {message}"]


def test_a_wrong_default_level_is_a_config_error_with_its_key_path() -> None:
    with pytest.raises(offload.ConfigError) as caught:
        nice_executor(default_level=20)
    assert "(config): command_executor.nice.default_level: must be 0 to 19, got 20" in str(caught.value)


def test_a_task_polled_right_after_it_started_is_not_taken_for_gone(tmp_path: Path) -> None:
    """While ``ionice`` and ``nice`` exec the next program, the wrapper's command line is empty for a moment."""
    with nice_executor() as executor:
        for n in range(60):
            handle = executor.submit(make_request(tmp_path, f"echo task {n}; exit {n % 3}", {"nice": {}}), backend="nice")
            (status,) = executor.poll([handle])  # at once: the poll most likely to meet an exec
            assert status.state in (offload.TaskState.RUNNING, offload.TaskState.SUCCEEDED, offload.TaskState.FAILED), status
            result, logs = wait_for(executor, status.handle or handle)
            assert (result.exit_code, [*status.logs, *logs]) == (n % 3, [f"task {n}"])

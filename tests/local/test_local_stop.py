"""Cancel and timeout stop every process of a local task, also those that left its group."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import offload
from offload.testing import make_request, wait_for

#: Two ways out of the task's process group, each recording its pid and its command line:
#: a ``setsid`` child, and a daemon that forks twice so that init adopts it.
ESCAPES = """\
setsid sh -c '{trap}echo $$ > escaped.pid; sleep 300; :' &
sh -c 'setsid sh -c "echo \\$\\$ > daemon.pid; sleep 300; :" & exit 0' &
echo started
sleep 300
"""


def read_pid(path: Path, limit: float = 60) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        time.sleep(0.05)
    pytest.fail(f"{path.name} was never written")


def live_members(group: int) -> list[int]:
    """The live processes of process group ``group``: zombies have finished."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] not in (b"Z", b"X"):
            found.append(int(name))
    return found


class Escapees:
    """The processes that left the task's group: each one leads a session (and group) of its own."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.groups: list[int] = []

    def wait_started(self) -> None:
        self.groups = [read_pid(self.project / name) for name in ("escaped.pid", "daemon.pid")]
        assert all(live_members(group) for group in self.groups)

    def alive(self) -> list[int]:
        return [pid for group in self.groups for pid in live_members(group)]

    def kill(self) -> None:
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)  # a group id is not reused while the group has members
            except ProcessLookupError:
                pass


@pytest.fixture
def escapees(tmp_path: Path) -> Iterator[Escapees]:
    found = Escapees(tmp_path)
    yield found
    found.kill()  # never leave a process behind, even when the test fails


@pytest.fixture
def executor() -> Iterator[offload.Executor]:
    with offload.Executor({"command_executor": {"type": "local"}}) as executor:
        yield executor


def test_cancel_kills_processes_that_left_the_group_even_when_they_ignore_sigterm(executor: offload.Executor, tmp_path: Path, escapees: Escapees) -> None:
    request = make_request(tmp_path, ESCAPES.format(trap='trap "" TERM; '), {})
    handle = executor.submit(request, backend="local")
    escapees.wait_started()
    executor.cancel(handle, grace=1)
    result, _ = wait_for(executor, handle, limit=60)
    assert result.state is offload.TaskState.CANCELLED
    assert escapees.alive() == []


def test_timeout_kills_processes_that_left_the_group(executor: offload.Executor, tmp_path: Path, escapees: Escapees) -> None:
    request = make_request(tmp_path, ESCAPES.format(trap=""), {}, timeout=3.0)
    handle = executor.submit(request, backend="local")
    escapees.wait_started()
    result, _ = wait_for(executor, handle, limit=60)
    assert result.state is offload.TaskState.FAILED
    assert "timed out" in (result.error or "")
    assert escapees.alive() == []


def test_cancel_from_a_new_driver_kills_them_too(tmp_path: Path, escapees: Escapees) -> None:
    request = make_request(tmp_path, ESCAPES.format(trap=""), {})
    with offload.Executor({"command_executor": {"type": "local"}}) as first:
        handle = first.submit(request, backend="local")
        escapees.wait_started()
    with offload.Executor({"command_executor": {"type": "local"}}) as second:
        second.cancel(handle, grace=1)
        result, _ = wait_for(second, handle, limit=60)
    assert result.state is offload.TaskState.CANCELLED
    assert escapees.alive() == []

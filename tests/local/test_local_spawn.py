"""How the local backend starts a task (``posix_spawn`` of its wrapper) and looks at it.

What ``subprocess`` would give a child, the wrapper gets too: default SIGPIPE, no
descriptor the driver inherited, a working directory that must exist. A running task's
files are looked at no more than every ``LOOK_EVERY`` seconds; its end is seen at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import offload
from offload.testing import make_request, wait_for
from offload_local import backend as local_backend
from offload_local import files


@pytest.fixture
def executor() -> Iterator[offload.Executor]:
    with offload.Executor({"command_executor": {"type": "local"}}) as executor:
        yield executor


def run(executor: offload.Executor, project: Path, script: str, **fields: object) -> tuple[offload.Result, list[str]]:
    handle = executor.submit(make_request(project, script, {}, **fields), backend="local")
    return wait_for(executor, handle)


def test_sigpipe_is_back_to_its_default_in_the_task(executor: offload.Executor, tmp_path: Path) -> None:
    # Python ignores SIGPIPE; a task that inherited that would see `yes` complain of a broken pipe
    result, lines = run(executor, tmp_path, "yes | head -n 2; grep SigIgn /proc/self/status >/dev/null; echo done")
    assert result.ok
    assert lines == ["y", "y", "done"]


def test_a_descriptor_the_driver_inherited_does_not_reach_the_task(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)  # as a descriptor handed down by the driver's own parent
    try:
        with offload.Executor({"command_executor": {"type": "local"}}) as executor:
            result, lines = run(executor, tmp_path, f"if [ -e /proc/self/fd/{write_end} ]; then echo open; else echo closed; fi")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.ok
    assert lines == ["closed"]


def test_a_missing_working_directory_fails_the_submission(executor: offload.Executor, tmp_path: Path) -> None:
    request = make_request(tmp_path, "true", {}, workdir="not/there")
    with pytest.raises(offload.BackendError, match=r"cannot start .* no such directory"):
        executor.submit(request, backend="local")


def test_the_task_runs_in_its_working_directory_with_its_environment(executor: offload.Executor, tmp_path: Path) -> None:
    (tmp_path / "sub dir").mkdir()
    result, lines = run(executor, tmp_path, 'pwd; echo "$GREETING"', workdir="sub dir", env={"GREETING": "hi there"})
    assert result.ok
    assert lines == [str(tmp_path / "sub dir"), "hi there"]


def test_a_quiet_running_task_is_not_looked_at_between_looks(executor: offload.Executor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[str] = []
    listing = files.listing

    def counted(io_path: str) -> frozenset[str]:
        looks.append(io_path)
        return listing(io_path)

    monkeypatch.setattr(files, "listing", counted)
    monkeypatch.setattr(local_backend, "LOOK_EVERY", 3600.0)
    handle = executor.submit(make_request(tmp_path, "exec sleep 300", {}), backend="local")
    looks.clear()  # the submission clears what an earlier attempt left in the io directory
    try:
        for _ in range(20):
            (status,) = executor.poll([handle])
            assert status.state is offload.TaskState.RUNNING
        assert looks == []  # it was started a moment ago: its wrapper runs, nothing to read
    finally:
        executor.cancel(handle, grace=0)
    result, _ = wait_for(executor, handle)
    assert result.state is offload.TaskState.CANCELLED
    assert looks  # the end is looked at at once


def test_the_end_of_a_task_is_seen_by_the_next_poll(executor: offload.Executor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_backend, "LOOK_EVERY", 3600.0)
    handle = executor.submit(make_request(tmp_path, "echo bye", {}), backend="local")
    deadline = time.monotonic() + 60
    while not os.path.exists(files.path(handle.io_path, files.EXIT)) and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(100):  # the exit file comes just before the wrapper exits
        (status,) = executor.poll([handle])
        if status.state.finished:
            break
        time.sleep(0.01)
    assert status.state is offload.TaskState.SUCCEEDED
    assert status.logs == ("bye",)


def test_a_script_that_replaces_the_exit_trap_still_gets_its_exit_code(executor: offload.Executor, tmp_path: Path) -> None:
    result, _ = run(executor, tmp_path, "trap 'echo mine' EXIT; exit 7")
    assert result.state is offload.TaskState.FAILED
    assert result.exit_code == 7

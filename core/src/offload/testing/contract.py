"""The contract every backend must keep, as a pytest class to subclass.

In a backend's tests::

    from offload.testing import BackendContract

    class TestMyBackendContract(BackendContract):
        backend_name = "mine"

        @pytest.fixture
        def executor_factory(self):
            return lambda: offload.Executor({"command_executor": {"type": "mine"}})

        @pytest.fixture
        def task_config(self):
            return {}          # the task's executor config that makes the backend usable

Commands run with ``/bin/sh`` and standard tools only, so the contract holds in a
minimal container image too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from offload import from_json, to_json
from offload.executor.executor import Executor
from offload.executor.models import Handle, Result, TaskRequest, TaskState

#: How long the contract waits for a task before calling it stuck (not a timing claim).
WAIT_LIMIT = 120.0


def make_request(project: Path, script: str, task_config: dict[str, Any], **fields: Any) -> TaskRequest:
    """A request running ``script`` with ``/bin/sh -c`` in ``project``, with its io directory made."""
    task_id = fields.pop("task_id", None) or f"t-{uuid.uuid4().hex[:10]}"
    io_dir = f".offload/io/{task_id}"
    (project / io_dir).mkdir(parents=True, exist_ok=True)
    env = {"OFFLOAD_IO_DIR": os.path.relpath(io_dir, fields.get("workdir", ".")), **fields.pop("env", {})}
    return TaskRequest(
        task_id=task_id,
        argv=("/bin/sh", "-c", script),
        project_dir=str(project),
        io_dir=io_dir,
        env=env,
        executor_config=task_config,
        **fields,
    )


def wait_for(executor: Executor, handle: Handle, limit: float = WAIT_LIMIT) -> tuple[Result, list[str]]:
    """Poll until finished (at most ``limit`` seconds), then collect; returns the result and log lines."""
    logs: list[str] = []
    deadline = time.monotonic() + limit
    while True:
        (status,) = executor.poll([handle])
        handle = status.handle or handle
        logs.extend(status.logs)
        if status.state.finished:
            return executor.collect(handle), logs
        if time.monotonic() > deadline:
            executor.cancel(handle, grace=1)
            pytest.fail(f"task {handle.task_id} still {status.state.value} after {limit} s")
        time.sleep(0.05)


def wait_for_line(proc: subprocess.Popen[str], needle: str, limit: float = WAIT_LIMIT) -> list[str]:
    """The lines ``proc`` (an ``offload`` command, stdout piped as text) printed up to the first
    that holds ``needle``; the test fails, and ``proc`` is killed, when none does in ``limit`` s."""
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    proc.kill()
    pytest.fail(f"never saw {needle!r}; output:\n{''.join(seen)}")


def wait_until_running(executor: Executor, handle: Handle, limit: float = WAIT_LIMIT) -> Handle:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        (status,) = executor.poll([handle])
        handle = status.handle or handle
        if status.state is TaskState.RUNNING:
            return handle
        assert not status.state.finished, f"task finished early: {status}"
        time.sleep(0.05)
    pytest.fail(f"task {handle.task_id} never started")


class BackendContract:
    """The behaviour offload relies on, checked through the public :class:`Executor`."""

    backend_name: str = ""

    @pytest.fixture
    def executor_factory(self) -> Callable[[], Executor]:
        raise NotImplementedError("override the executor_factory fixture")

    @pytest.fixture
    def task_config(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    def project(self, tmp_path: Path) -> Path:
        project = tmp_path / "project"
        project.mkdir()
        return project

    @pytest.fixture
    def executor(self, executor_factory: Callable[[], Executor]) -> Any:
        executor = executor_factory()
        yield executor
        executor.close()

    def run(self, executor: Executor, request: TaskRequest) -> tuple[Result, list[str]]:
        handle = executor.submit(request, backend=self.backend_name)
        assert handle.backend == self.backend_name
        return wait_for(executor, handle)

    def test_echo_succeeds_with_its_output_in_the_log(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        result, logs = self.run(executor, make_request(project, "echo hello from offload", task_config))
        assert result.state is TaskState.SUCCEEDED
        assert result.exit_code == 0
        assert "hello from offload" in "\n".join(logs)

    def test_the_last_line_comes_whole_without_a_newline(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        result, logs = self.run(executor, make_request(project, "echo first; printf 'no newline at the end'", task_config))
        assert result.ok
        assert logs[-1] == "no newline at the end"

    def test_stderr_reaches_the_log_too(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        result, logs = self.run(executor, make_request(project, "echo to-stderr >&2", task_config))
        assert result.ok
        assert "to-stderr" in "\n".join(logs)

    @pytest.mark.parametrize("code", [1, 3, 42])
    def test_exit_code_is_reported_and_fails_the_task(self, executor: Executor, project: Path, task_config: dict[str, Any], code: int) -> None:
        result, _ = self.run(executor, make_request(project, f"exit {code}", task_config))
        assert result.state is TaskState.FAILED
        assert result.exit_code == code

    def test_environment_reaches_the_command(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        env = {"GREETING": "hi there; $(not run)", "EMPTY": ""}
        request = make_request(project, 'printf "[%s][%s]\\n" "$GREETING" "${EMPTY-unset}"', task_config, env=env)
        result, logs = self.run(executor, request)
        assert result.ok
        assert "[hi there; $(not run)][]" in logs

    def test_project_files_are_visible_in_the_working_directory(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        (project / "sub").mkdir()
        (project / "sub" / "data.txt").write_text("project data\n")
        request = make_request(project, "cat data.txt", task_config, workdir="sub")
        result, logs = self.run(executor, request)
        assert result.ok, logs
        assert "project data" in logs

    def test_io_files_go_in_and_come_back(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        script = 'mkdir -p "$OFFLOAD_IO_DIR/outputs" && tr a-z A-Z < "$OFFLOAD_IO_DIR/in.txt" > "$OFFLOAD_IO_DIR/outputs/out.txt"'
        request = make_request(project, script, task_config)
        Path(request.io_path, "in.txt").write_text("shout\n")
        result, logs = self.run(executor, request)
        assert result.ok, logs
        assert result.output_files == ("outputs/out.txt",)
        assert Path(request.io_path, "outputs", "out.txt").read_text() == "SHOUT\n"

    def test_output_params_come_back_from_output_json(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        payload = json.dumps({"store_params": {"answer": 42}, "export_params": {"region": "eu"}})
        request = make_request(project, f"printf '%s' '{payload}' > \"$OFFLOAD_IO_DIR/output.json\"", task_config)
        result, _ = self.run(executor, request)
        assert result.ok
        assert result.store_params == {"answer": 42}
        assert result.export_params == {"region": "eu"}

    def test_timeout_fails_the_task(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        request = make_request(project, "echo started; sleep 120; echo never", task_config, timeout=2.0)
        result, logs = self.run(executor, request)
        assert result.state is TaskState.FAILED
        assert "timed out" in (result.error or "")
        assert "never" not in logs

    def test_cancel_stops_a_running_task(self, executor: Executor, project: Path, task_config: dict[str, Any]) -> None:
        request = make_request(project, "echo started; sleep 120", task_config)
        handle = executor.submit(request, backend=self.backend_name)
        handle = wait_until_running(executor, handle)
        executor.cancel(handle, grace=2)
        result, _ = wait_for(executor, handle, limit=60)
        assert result.state is TaskState.CANCELLED

    def test_a_serialised_handle_is_enough_to_resume(self, executor_factory: Callable[[], Executor], project: Path, task_config: dict[str, Any]) -> None:
        first = executor_factory()
        request = make_request(project, "echo before; sleep 2; echo after; exit 5", task_config)
        saved = to_json(first.submit(request, backend=self.backend_name))
        first.close()  # the driver goes away; the task goes on
        second = executor_factory()
        try:
            handle = from_json(saved, Handle)
            assert to_json(handle) == saved
            result, logs = wait_for(second, handle)
        finally:
            second.close()
        assert result.exit_code == 5
        assert "after" in logs

"""Cancel without blocking, one grace period for all; a finished task keeps its result;
a hung engine costs seconds with a clear error."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

import offload
from offload import TaskState
from offload.testing import make_request, wait_for, wait_until_running

Make = Callable[..., offload.Executor]
TRAPS_TERM = "trap 'echo got TERM' TERM; echo started; while true; do sleep 0.2; done"


def test_cancel_returns_at_once_and_all_tasks_share_one_grace_period(docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    grace = 6.0
    handles = [executor.submit(make_request(project, TRAPS_TERM, {"docker": {"image": image}}), backend="docker") for _ in range(5)]
    handles = [wait_until_running(executor, handle) for handle in handles]
    began = time.monotonic()
    for handle in handles:
        executor.cancel(handle, grace=grace)
    cancelling = time.monotonic() - began
    outcomes = [wait_for(executor, handle) for handle in handles]
    total = time.monotonic() - began
    assert [result.state for result, _ in outcomes] == [TaskState.CANCELLED] * 5
    assert all("got TERM" in logs for _, logs in outcomes), "each got the stop signal first"
    assert all(result.exit_code == 137 for result, _ in outcomes), "then SIGKILL, as they ignored it"
    assert cancelling < grace, f"cancel waited for the containers: {cancelling:.1f} s for 5"
    assert grace <= total < 3 * grace, f"one grace period for all, not one each: {total:.1f} s"


def test_cancel_with_no_grace_kills_at_once(docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    handle = wait_until_running(executor, executor.submit(make_request(project, TRAPS_TERM, {"docker": {"image": image}}), backend="docker"))
    executor.cancel(handle, grace=0)
    result, logs = wait_for(executor, handle, limit=30)
    assert (result.state, result.exit_code) == (TaskState.CANCELLED, 137)
    assert "got TERM" not in logs


def test_a_task_that_finished_before_the_cancel_keeps_its_real_result(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, started: Callable[[offload.Handle], str]
) -> None:
    executor = docker_executor()
    done = executor.submit(make_request(project, "echo all done", {"docker": {"image": image}}), backend="docker")
    failed = executor.submit(make_request(project, "exit 3", {"docker": {"image": image}}), backend="docker")
    for handle in (done, failed):
        engine.containers.get(started(handle)).wait(timeout=60)
    for handle in (done, failed):  # Ctrl-C as they finish: the driver has not polled since
        executor.cancel(handle, grace=10)
    result, logs = wait_for(executor, done)
    assert (result.state, result.exit_code, logs) == (TaskState.SUCCEEDED, 0, ["all done"])
    result, _ = wait_for(executor, failed)
    assert (result.state, result.exit_code) == (TaskState.FAILED, 3)
    assert result.error == f"task {failed.task_id}: command exited with code 3"


def test_a_cancelled_task_that_exits_at_its_stop_signal_is_cancelled(docker_executor: Make, project: Path, image: str) -> None:
    executor = docker_executor()
    handle = executor.submit(make_request(project, "echo started; sleep 120", {"docker": {"image": image}}), backend="docker")
    handle = wait_until_running(executor, handle)
    executor.cancel(handle, grace=30)
    result, _ = wait_for(executor, handle, limit=25)  # the init passes SIGTERM on: no need for the kill
    assert (result.state, result.exit_code) == (TaskState.CANCELLED, 143)


@pytest.fixture
def hung_engine() -> Iterator[str]:
    """An address on loopback that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    for conn in held:
        conn.close()


def test_a_hung_engine_makes_poll_and_cancel_fail_fast_with_a_clear_error(
    docker_executor: Make, project: Path, image: str, hung_engine: str
) -> None:
    executor = docker_executor()
    real = wait_until_running(executor, executor.submit(make_request(project, "sleep 120", {"docker": {"image": image}}), backend="docker"))
    hung = real.with_state(engine=hung_engine)  # the engine stops answering mid-run
    slow = docker_executor({"api_timeout": 1})
    try:
        began = time.monotonic()
        with pytest.raises(offload.BackendError) as polled:
            slow.poll([hung])
        with pytest.raises(offload.BackendError) as cancelled:
            slow.cancel(hung, grace=10)
        with pytest.raises(offload.BackendError):
            slow.cancel(hung, grace=10)  # a second task on the same engine: no second wait
        elapsed = time.monotonic() - began
        for raised in (polled, cancelled):
            message = str(raised.value)
            assert message.startswith(f"task {real.task_id}: the Docker Engine at {hung_engine} did not answer within 1 s (")
            assert "it may be hung or overloaded" in message
        assert elapsed < 20, f"the SDK's 60 s read timeout was waited for: {elapsed:.1f} s"
    finally:
        executor.cancel(real, grace=0)
        wait_for(executor, real)


def test_a_hung_engine_does_not_hold_up_waiting_between_polls(docker_executor: Make, project: Path, image: str, hung_engine: str) -> None:
    executor = docker_executor({"api_timeout": 1})
    handle = offload.Handle("docker", "t-hung", str(project), {"engine": hung_engine, "submission": "x", "phase": "started", "container": "c" * 64})
    began = time.monotonic()
    executor.backends.get("docker").wait([handle], 0.5)
    assert time.monotonic() - began < 10

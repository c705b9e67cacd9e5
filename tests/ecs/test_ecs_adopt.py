"""Nothing twice: the same submission starts one ECS task, whoever submits it and however
often; ``Backend.adopt`` finds that task after the driver died between ``run_task`` and
journaling its handle, and the adopted handle is polled, collected and cancelled like a
fresh one. The harness plays RunTask's ``clientToken`` as ECS documents it."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from ecs_harness.world import BUCKET, IMAGE, World

import offload
from offload.testing import make_request, wait_for
from offload_ecs import adoption, identity

TASK = {"docker": {"image": IMAGE}}


def eventually(check: Callable[[], bool], what: str, limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {limit} s")
        time.sleep(0.02)


def gated(tmp_path: Path) -> tuple[str, Path, Path]:
    """A script that counts its runs, then waits for a gate file before it writes its output."""
    runs, gate = tmp_path / "runs.log", tmp_path / "gate"
    script = (
        f"echo run >> {shlex.quote(str(runs))}; echo started; "
        f"while [ ! -f {shlex.quote(str(gate))} ]; do sleep 0.05; done; "
        'echo done > "$OFFLOAD_IO_DIR/out.txt"; echo finished'
    )
    return script, runs, gate


def tasks_of(world: World, request: offload.TaskRequest) -> list[Any]:
    """The tasks moto holds for ``request`` (every one the agent ran or will run)."""
    return [t for t in world.agent.tasks() if {"key": "offload.task-id", "value": request.task_id} in (t.tags or [])]


def runs_of(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_the_client_token_comes_from_the_submission_within_ecss_limits() -> None:
    task_id = "run_20250101T000000-abc123." + "_2b" * 40 + ".+load+data:x;y.1"  # long, escapes, any characters
    submission = identity.submission_id("/p", task_id)
    token = identity.client_token(submission, 1)
    assert len(token) <= 64 and all(33 <= ord(c) <= 126 for c in token)
    assert token == identity.client_token(identity.submission_id("/p", task_id), 1)
    others = {
        identity.client_token(submission, 2),
        identity.client_token(identity.submission_id("/q", task_id), 1),
        identity.client_token(identity.submission_id("/p", task_id[:-1] + "2"), 1),
    }
    assert token not in others and len(others) == 3


def test_run_task_carries_the_submissions_client_token(world: World, project: Path) -> None:
    request = make_request(project, "true", TASK)
    with offload.Executor(world.config()) as executor:
        result, _ = wait_for(executor, executor.submit(request))
    assert result.ok
    assert world.server.tokens is not None
    assert world.server.tokens.seen[-1] == identity.client_token(identity.submission_id(request.project_dir, request.task_id), 1)


def test_submitting_the_same_request_again_starts_no_second_task(world: World, project: Path, tmp_path: Path) -> None:
    script, runs, gate = gated(tmp_path)
    request = make_request(project, script, TASK)
    with offload.Executor(world.config()) as first:
        handle = first.submit(request)
    eventually(lambda: runs_of(runs) == 1, "the task started")
    with offload.Executor(world.config()) as second:  # a driver that knows nothing of the first call
        again = second.submit(request)
        assert again.state["task_arn"] == handle.state["task_arn"]
        gate.write_text("")
        result, logs = wait_for(second, again)
    assert result.ok, logs
    assert "started" in logs and "finished" in logs
    assert (Path(request.io_path) / "out.txt").read_text() == "done\n"
    assert runs_of(runs) == 1 and len(tasks_of(world, request)) == 1


def test_adopt_finds_the_running_task_and_follows_it_like_a_fresh_handle(world: World, project: Path, tmp_path: Path) -> None:
    script, runs, gate = gated(tmp_path)
    request = make_request(project, script, TASK, timeout=600)
    with offload.Executor(world.config()) as dead:
        handle = dead.submit(request)  # the driver dies before journaling this handle
    eventually(lambda: runs_of(runs) == 1, "the task started")
    with offload.Executor(world.config()) as resumed:
        elsewhere = attrs.evolve(request, project_dir=str(tmp_path / "another-project"))
        assert resumed.adopt(elsewhere) is None  # same task id, another project: not this task
        adopted = resumed.adopt(request)
        assert adopted is not None
        same = ("task_arn", "cluster", "region", "container", "log_group", "log_stream", "input_key", "output_key", "marker", "timeout")
        assert {k: adopted.state[k] for k in same} == {k: handle.state[k] for k in same}
        assert adopted.io_path == handle.io_path and adopted.task_id == handle.task_id
        (status,) = resumed.poll([adopted])
        assert not status.state.finished
        gate.write_text("")
        result, logs = wait_for(resumed, status.handle or adopted)
        logs = [*status.logs, *logs]
    assert result.ok, logs
    assert any("found task" in line and "before the driver stopped" in line for line in logs)
    assert "started" in logs and "finished" in logs  # the log from its first line
    assert (Path(request.io_path) / "out.txt").read_text() == "done\n"
    assert runs_of(runs) == 1 and len(tasks_of(world, request)) == 1


def test_adopt_finds_a_task_that_finished_meanwhile(world: World, project: Path) -> None:
    request = make_request(project, 'echo early > "$OFFLOAD_IO_DIR/out.txt"; echo gone; exit 4', TASK)
    with offload.Executor(world.config()) as dead:
        handle = dead.submit(request)
    eventually(lambda: world.task(handle.state["task_arn"])["lastStatus"] == "STOPPED", "the task stopped")
    with offload.Executor(world.config()) as resumed:
        adopted = resumed.adopt(request)
        assert adopted is not None
        result, logs = wait_for(resumed, adopted)
    assert result.exit_code == 4 and "gone" in logs
    assert (Path(request.io_path) / "out.txt").read_text() == "early\n"
    assert len(tasks_of(world, request)) == 1


def test_an_adopted_task_can_be_cancelled(world: World, project: Path, tmp_path: Path) -> None:
    script, runs, _gate = gated(tmp_path)
    request = make_request(project, script, TASK)
    with offload.Executor(world.config()) as dead:
        dead.submit(request)
    eventually(lambda: runs_of(runs) == 1, "the task started")
    with offload.Executor(world.config()) as resumed:
        adopted = resumed.adopt(request)
        assert adopted is not None
        resumed.cancel(adopted, grace=1)
        result, _ = wait_for(resumed, adopted)
    assert result.state is offload.TaskState.CANCELLED
    assert runs_of(runs) == 1


def test_nothing_to_adopt_when_run_task_started_nothing_then_submit_runs_it_once(world: World, project: Path, tmp_path: Path) -> None:
    script, runs, gate = gated(tmp_path)
    gate.write_text("")
    request = make_request(project, script, TASK)
    world.server.faults.add("RunTask", 1, error=("ServerException", "the driver is gone before ECS answers"))
    with offload.Executor(world.config(max_retries=0)) as dead, pytest.raises(offload.BackendError):
        dead.submit(request)  # the project archive is in S3, no task was started
    archives = world.s3.list_objects_v2(Bucket=BUCKET, Prefix="offload/")["Contents"]
    assert any(identity.short(identity.submission_id(request.project_dir, request.task_id)) in o["Key"] for o in archives)
    with offload.Executor(world.config()) as resumed:
        assert resumed.adopt(request) is None
        result, _ = wait_for(resumed, resumed.submit(request))
    assert result.ok
    assert runs_of(runs) == 1 and len(tasks_of(world, request)) == 1


def test_a_token_spent_on_failures_moves_on_to_the_next_attempt(world: World, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adoption, "LOOKUP_WAITS", (0.0,))
    script, runs, gate = gated(tmp_path)
    gate.write_text("")
    request = make_request(project, script, TASK)
    world.server.faults.add("RunTask", 1, body={"tasks": [], "failures": [{"reason": "RESOURCE:MEMORY"}]})
    with offload.Executor(world.config()) as dead:
        dead.submit(request)  # attempt 1 got failures[]; its handle was never journaled
        signed = int(time.time())
    # URLs signed in the same second are the same, and ECS would answer failures[] again;
    # a second later they differ (ConflictException), the case to see here.
    eventually(lambda: int(time.time()) > signed, "the next second")
    with offload.Executor(world.config()) as resumed:
        handle = resumed.submit(request)  # attempt 1 again: its token is spent
        assert handle.state["task_arn"] is None and handle.state["run"]["attempts"] == 1
        result, logs = wait_for(resumed, handle)
    assert result.ok, logs
    assert any("ConflictException" in line and "no task of this submission" in line for line in logs), logs
    assert runs_of(runs) == 1 and len(tasks_of(world, request)) == 1

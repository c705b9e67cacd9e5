"""Following tasks: one describe_tasks per 100 tasks, logs read to the end-of-log
marker after STOPPED, a bounded wait when it never comes, lost tasks, cancel before start."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from ecs_harness.world import CLUSTER, IMAGE, World

import offload
from offload import from_json, to_json
from offload.testing import make_request, wait_for

TASK = {"docker": {"image": IMAGE}}


def test_one_describe_call_per_hundred_tasks_for_all_handles(world: World) -> None:
    arn = world.register(f"unpullable-{uuid.uuid4().hex[:6]}:1", tag_key=None)
    network = {"awsvpcConfiguration": {"subnets": [world.subnet], "securityGroups": [world.security_group]}}
    arns: list[str] = []
    for _ in range(25):
        response = world.ecs.run_task(cluster=CLUSTER, taskDefinition=arn, launchType="FARGATE", count=10, networkConfiguration=network)
        arns.extend(t["taskArn"] for t in response["tasks"])
    assert len(arns) == 250
    handles = [
        offload.Handle(
            "ecs",
            f"t{i}",
            "/tmp/none",
            {"cluster": CLUSTER, "region": "us-east-1", "task_arn": a, "container": "main", "marker": "m", "submitted_at": time.time(), "timeout": None},
        )
        for i, a in enumerate(arns)
    ]
    with offload.Executor(world.config()) as executor:
        before = world.server.faults.calls["DescribeTasks"]
        statuses = executor.poll(handles)
        assert world.server.faults.calls["DescribeTasks"] - before == 3
    assert len(statuses) == 250
    assert all(s.handle is not None and s.handle.state["task_arn"] == h.state["task_arn"] for s, h in zip(statuses, handles, strict=True))


def test_a_task_ecs_no_longer_knows_is_lost(world: World) -> None:
    arn = f"arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/{uuid.uuid4()}"
    handle = offload.Handle(
        "ecs",
        "gone",
        "/tmp/none",
        {"cluster": CLUSTER, "region": "us-east-1", "task_arn": arn, "container": "main", "marker": "m", "submitted_at": time.time(), "timeout": None},
    )
    with offload.Executor(world.config()) as executor:
        (status,) = executor.poll([handle])
        result = executor.collect(handle)
    assert status.state is offload.TaskState.LOST and arn in (status.reason or "")
    assert result.state is offload.TaskState.LOST


def test_logs_that_arrive_after_the_task_stopped_are_still_read(world: World, project: Path) -> None:
    world.agent.log_lag = 1.0
    with offload.Executor(world.config()) as executor:
        result, logs = wait_for(executor, executor.submit(make_request(project, "for i in 1 2 3; do echo line-$i; done", TASK)), limit=60)
    assert result.ok
    assert [line for line in logs if line.startswith("line-")] == ["line-1", "line-2", "line-3"]
    assert not any("end-of-log" in line or "may be incomplete" in line for line in logs)


def test_the_wait_for_the_end_of_the_log_is_bounded(world: World, project: Path) -> None:
    # The command kills offload's bootstrap: no marker, no output, as when a container is killed.
    config = world.config(stopped_log_wait=1)
    with offload.Executor(config) as executor:
        started = time.monotonic()
        result, logs = wait_for(executor, executor.submit(make_request(project, "echo before; kill -KILL $PPID; sleep 5", TASK)), limit=60)
        elapsed = time.monotonic() - started
    assert result.state is offload.TaskState.FAILED and result.exit_code == 137
    assert "before" in logs
    assert any("the log may be incomplete" in line for line in logs)
    assert elapsed < 8


def test_a_task_without_awslogs_runs_without_logs(world: World, project: Path) -> None:
    arn = world.register(IMAGE, tag_key=None, logs=False)
    with offload.Executor(world.config()) as executor:
        request = make_request(project, 'echo quiet > "$OFFLOAD_IO_DIR/out.txt"; exit 3', {"ecs": {"task_definition_arn": arn}})
        result, logs = wait_for(executor, executor.submit(request), limit=60)
    assert result.exit_code == 3 and "exit code 3" in (result.error or "")
    assert (Path(request.io_path) / "out.txt").read_text() == "quiet\n"
    assert not [line for line in logs if not line.startswith("offload:")]


def test_a_task_waiting_for_a_run_task_retry_can_be_cancelled_from_another_process(world: World, project: Path) -> None:
    failure = {"tasks": [], "failures": [{"reason": "RESOURCE:CPU"}]}
    world.server.faults.add("RunTask", 1, body=failure)
    config = world.config(run_task_retry_delay=30)
    with offload.Executor(config) as first:
        saved = to_json(first.submit(make_request(project, "echo should not run", TASK)))
    handle = from_json(saved, offload.Handle)
    assert handle.state["task_arn"] is None and handle.state["run"]["attempts"] == 1
    with offload.Executor(config) as second:
        second.cancel(handle)
    runs = world.server.faults.calls["RunTask"]
    with offload.Executor(config) as third:  # knows nothing of the cancel but what S3 holds
        state = dict(handle.state)
        state["run"] = {**state["run"], "retry_at": 0}
        result, _ = wait_for(third, offload.Handle(handle.backend, handle.task_id, handle.io_path, state))
    assert result.state is offload.TaskState.CANCELLED
    assert world.server.faults.calls["RunTask"] == runs

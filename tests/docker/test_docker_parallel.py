"""Many tasks at once: ``submit`` returns before the container exists, a pool of workers
starts the containers, and every task still runs once with its whole log once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

import offload
from offload import Handle, TaskState
from offload.testing import make_request, wait_for
from offload_docker import container, starting

Make = Callable[..., offload.Executor]


def run_together(executor: offload.Executor, handles: list[Handle], limit: float = 120) -> dict[str, tuple[offload.Result, list[str]]]:
    """Poll all handles together, as the workflow runner does, collecting each as it finishes."""
    logs: dict[str, list[str]] = {h.task_id: [] for h in handles}
    results: dict[str, tuple[offload.Result, list[str]]] = {}
    running = list(handles)
    deadline = time.monotonic() + limit
    while running:
        assert time.monotonic() < deadline, f"still running: {[h.task_id for h in running]}"
        still = []
        for handle, status in zip(running, executor.poll(running), strict=True):
            handle = status.handle or handle
            logs[handle.task_id] += status.logs
            if status.state.finished:
                results[handle.task_id] = (executor.collect(handle), logs[handle.task_id])
            else:
                still.append(handle)
        running = still
        executor.wait_any(running, 0.2)
    return results


def test_twenty_parallel_tasks_all_succeed_with_their_logs_exactly_once(docker_executor: Make, project: Path, image: str, engine: docker.DockerClient) -> None:
    executor = docker_executor({"start_concurrency": 4})
    script = "echo out {i}; echo err {i} >&2; sleep 1; echo last {i}"
    requests = [make_request(project, script.format(i=i), {"docker": {"image": image}}) for i in range(20)]
    handles = [executor.submit(request, backend="docker") for request in requests]
    assert all(h.state["phase"] == "preparing" and "container" not in h.state for h in handles), "submit does not wait for the engine"
    results = run_together(executor, handles)
    for i, request in enumerate(requests):
        result, logs = results[request.task_id]
        assert result.state is TaskState.SUCCEEDED, result
        assert sorted(logs) == sorted([f"out {i}", f"err {i}", f"last {i}"]), logs
        assert [line for line in logs if not line.startswith("err")] == [f"out {i}", f"last {i}"]
    executor.close()
    assert engine.containers.list(all=True, filters={"label": f"offload.project={project}"}) == []


@pytest.fixture
def held_starts(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Starts wait until ``release`` is set; ``entered`` is set when the first one waits."""
    entered, release = threading.Event(), threading.Event()
    real = starting.launch

    def held(*args: Any, **kwargs: Any) -> str:
        entered.set()
        assert release.wait(60), "the test never released the start"
        return real(*args, **kwargs)

    monkeypatch.setattr(starting, "launch", held)
    yield entered, release
    release.set()


def test_tasks_cancelled_while_queued_or_while_their_container_starts_are_cancelled_and_never_run_on(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, held_starts: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = held_starts
    executor = docker_executor({"start_concurrency": 1})
    script = "echo ran >> ran-$TASK.txt; sleep 60"
    starting_one = executor.submit(make_request(project, script, {"docker": {"image": image}}, env={"TASK": "a"}), backend="docker")
    assert entered.wait(60), "the first start never began"
    queued = executor.submit(make_request(project, script, {"docker": {"image": image}}, env={"TASK": "b"}), backend="docker")
    began = time.monotonic()
    executor.cancel(starting_one, grace=0)
    executor.cancel(queued, grace=0)
    assert time.monotonic() - began < 5, "cancel does not wait for the start"
    release.set()
    result, _ = wait_for(executor, starting_one)
    assert result.state is TaskState.CANCELLED
    result, _ = wait_for(executor, queued)
    assert result.state is TaskState.CANCELLED
    assert result.error == f"task {queued.task_id}: cancelled before it started"
    labelled = engine.containers.list(all=True, filters={"label": f"offload.task-id={queued.task_id}"})
    assert labelled == [], "the queued task's container was never made"
    assert not (project / "ran-b.txt").exists()
    executor.close()
    assert engine.containers.list(all=True, filters={"label": f"offload.project={project}"}) == []


def test_a_second_start_of_the_same_submission_uses_the_container_the_first_made(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient
) -> None:
    """A driver killed while its create was on the way, and the next one starting the task
    again under the same submission: one container, started once."""
    executor = docker_executor()
    _, request = executor.prepare(make_request(project, "echo ran >> ran.txt", {"docker": {"image": image}}), "docker")
    settings, system, api = request.settings, executor.backends.get("docker").config, engine.api
    first = container.create(api, request, settings, system, image, "samesubmission", False)
    second = container.launch(api, request, settings, system, image, "samesubmission", False)
    assert first == second
    assert len(engine.containers.list(all=True, filters={"label": "offload.submission=samesubmission"})) == 1
    assert engine.api.wait(second, timeout=60)["StatusCode"] == 0
    assert (project / "ran.txt").read_text() == "ran\n"
    engine.api.remove_container(second, force=True)
    other = container.container_name(request.task_id, "samesubmission")
    engine.api.create_container(image, ["true"], name=other, labels={"offload.submission": "another"})
    try:
        with pytest.raises(docker.errors.APIError) as raised:
            container.create(api, request, settings, system, image, "samesubmission", False)
        assert raised.value.status_code == 409, "a container of another submission with that name is not taken over"
    finally:
        engine.api.remove_container(other, force=True)


def test_an_image_removed_from_the_engine_between_two_tasks_is_prepared_again(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient
) -> None:
    """The image found for the first task is not looked up again for the next ones; one
    removed meanwhile is built again, not reported missing."""
    marker = uuid.uuid4().hex
    spec = offload.ImageSpec(image=image, build=(f"echo {marker} > /marker",))
    tag = offload.image_tag(spec, offload.default_dockerfile(spec))
    config = {"docker": {"image": image, "build": list(spec.build)}}
    executor = docker_executor()
    try:
        for _ in range(2):
            result, logs = wait_for(executor, executor.submit(make_request(project, "cat /marker", config), backend="docker"))
            assert result.ok, (result, logs)
            assert logs[-1] == marker
            engine.images.remove(tag, force=True)
    finally:
        try:
            engine.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass

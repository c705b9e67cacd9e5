"""Fixtures of the Docker backend's tests: a real engine, the offline test image.

Without an engine the tests are skipped, except in CI (``CI=true``) where a missing
engine fails them: ``bash scripts/setup_docker.sh`` starts one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

import offload

IMAGE = os.environ.get("OFFLOAD_TEST_IMAGE", "offload-test-base:bookworm")


def _engine_problem() -> str | None:
    try:
        client = docker.from_env()
    except docker.errors.DockerException as e:
        return f"no Docker Engine answers ({e}); run: bash scripts/setup_docker.sh"
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return f"test image {IMAGE} is missing; run: bash scripts/setup_docker.sh"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    problem = _engine_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def image(engine: docker.DockerClient) -> str:
    return IMAGE


@pytest.fixture
def docker_executor(engine: docker.DockerClient) -> Iterator[Callable[..., offload.Executor]]:
    """Executors with the docker backend forced; closed at the end of the test."""
    made: list[offload.Executor] = []

    def make(section: dict[str, Any] | None = None, plugin_manager: Any = None) -> offload.Executor:
        config: dict[str, Any] = {"type": "docker"}
        if section is not None:
            config["docker"] = section
        executor = offload.Executor({"command_executor": config}, plugin_manager=plugin_manager)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path



@pytest.fixture
def started(engine: docker.DockerClient) -> Callable[[offload.Handle], str]:
    """``started(handle)``: the id of ``handle``'s container once the engine has started it.

    ``submit`` returns before the container exists (a worker starts it); this waits for
    it by its submission label, without polling the executor (which would take its log)."""

    def wait(handle: offload.Handle, limit: float = 60) -> str:
        label = f"offload.submission={handle.state['submission']}"
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            found = engine.api.containers(all=True, filters={"label": label})
            if found and found[0]["State"] != "created":
                return str(found[0]["Id"])
            time.sleep(0.05)
        pytest.fail(f"the container of task {handle.task_id} was not started within {limit} s")

    return wait

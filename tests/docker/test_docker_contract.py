"""The core's conformance contract, against the real engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import pytest

import offload
from offload.testing import BackendContract


class TestDockerContract(BackendContract):
    backend_name = "docker"

    @pytest.fixture
    def executor_factory(self, engine: docker.DockerClient) -> Callable[[], offload.Executor]:
        return lambda: offload.Executor({"command_executor": {"type": "docker"}})

    @pytest.fixture
    def task_config(self, image: str) -> dict[str, Any]:
        return {"docker": {"image": image}}

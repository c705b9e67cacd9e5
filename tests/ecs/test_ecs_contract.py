"""The conformance contract of offload.testing, against moto and the test agent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ecs_harness.world import IMAGE, World

import offload
from offload.testing import BackendContract


class TestEcsContract(BackendContract):
    backend_name = "ecs"

    @pytest.fixture
    def executor_factory(self, world: World) -> Callable[[], offload.Executor]:
        return lambda: offload.Executor(world.config())

    @pytest.fixture
    def task_config(self) -> dict[str, Any]:
        return {"docker": {"image": IMAGE}}

"""The local backend keeps the contract every backend keeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import offload
from offload.testing import BackendContract


class TestLocalContract(BackendContract):
    backend_name = "local"

    @pytest.fixture
    def executor_factory(self) -> Callable[[], offload.Executor]:
        return lambda: offload.Executor({"command_executor": {"type": "local"}})

"""The conformance contract of offload.testing, against a real kube-apiserver and the fake kubelet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from k8s_offload import TASK, k8s_executor  # noqa: F401 - a fixture

import offload
from offload.testing import BackendContract


class TestKubernetesContract(BackendContract):
    backend_name = "kubernetes"

    @pytest.fixture
    def executor_factory(self, k8s_executor: Callable[..., offload.Executor]) -> Callable[[], offload.Executor]:  # noqa: F811
        return lambda: k8s_executor()

    @pytest.fixture
    def task_config(self) -> dict[str, Any]:
        return dict(TASK)

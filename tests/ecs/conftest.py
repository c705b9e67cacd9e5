"""Fixtures of the ECS tests: one moto server and one test agent for the session.

Nothing here reaches AWS: every client is pointed at the moto server on 127.0.0.1,
the instance metadata service is switched off, and the shared config files are empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ecs_harness.offline import offline_aws_environment

offline_aws_environment()

from ecs_harness.server import MotoServer  # noqa: E402
from ecs_harness.world import IMAGE, World  # noqa: E402


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def world(moto_server: MotoServer) -> Iterator[World]:
    w = World(moto_server)
    w.register(IMAGE, family="offload-base")
    w.agent.start()
    yield w
    w.agent.stop()


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "world" in request.fixturenames:
        w: World = request.getfixturevalue("world")
        w.server.faults.clear()
        w.server.faults.paths.clear()
        w.agent.mode = "process"
        w.agent.log_lag = 0.0


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path

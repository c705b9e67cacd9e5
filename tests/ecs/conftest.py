"""Fixtures of the ECS tests: one moto server and one test agent for the session.

Nothing here reaches AWS: every client is pointed at the moto server on 127.0.0.1,
the instance metadata service is switched off, and the shared config files are empty.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_EMPTY = tempfile.NamedTemporaryFile(prefix="offload-ecs-aws-", delete=False)
for _name, _value in {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": _EMPTY.name,
    "AWS_SHARED_CREDENTIALS_FILE": _EMPTY.name,
}.items():
    os.environ[_name] = _value
for _name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
    os.environ.pop(_name, None)

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
        w.agent.mode = "process"
        w.agent.log_lag = 0.0


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path

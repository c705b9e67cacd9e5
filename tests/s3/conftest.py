"""Fixtures of the S3 storage tests: the ECS tests' moto server on 127.0.0.1, which also plays
what moto leaves out (a presigned URL's expiry, unknown access keys).

Nothing here reaches AWS: the instance metadata service is switched off and the shared
config files are empty, so only the credentials a test gives are used.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ecs"))  # the shared AWS test server

from ecs_harness.offline import offline_aws_environment

offline_aws_environment()

from ecs_harness.server import MotoServer  # noqa: E402

from offload_s3 import S3Config, S3Storage  # noqa: E402


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "s3_server" in request.fixturenames:
        request.getfixturevalue("s3_server").faults.clear()


@pytest.fixture
def make_storage(s3_server: MotoServer) -> Callable[..., S3Storage]:
    """A storage on the test server; keys of :class:`S3Config` override the defaults."""

    def make(**fields: Any) -> S3Storage:
        values: dict[str, Any] = {
            "bucket": "offload-test",
            "endpoint": s3_server.url,
            "region": "us-east-1",
            "access_key_id": "TESTKEY",
            "secret_access_key": "test-secret",
            **fields,
        }
        return S3Storage(S3Config(**values))

    return make


@pytest.fixture
def fresh_bucket(make_storage: Callable[..., S3Storage]) -> str:
    name = f"offload-{uuid.uuid4().hex[:12]}"
    make_storage(bucket=name).client().create_bucket(Bucket=name)
    return name

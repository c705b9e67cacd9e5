"""offload-s3 keeps the storage contract, against moto on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ecs_harness.server import MotoServer

from offload.testing import StorageContract
from offload_s3 import S3Storage


class TestS3Contract(StorageContract):
    checks_expiry = True  # the test server refuses an expired URL, as S3 does

    @pytest.fixture
    def storage(self, make_storage: Callable[..., S3Storage], fresh_bucket: str) -> S3Storage:
        return make_storage(bucket=fresh_bucket, prefix="runs/")

    @pytest.fixture
    def missing_bucket_storage(self, make_storage: Callable[..., S3Storage]) -> S3Storage:
        return make_storage(bucket="no-such-bucket-here")

    @pytest.fixture
    def wrong_credentials_storage(
        self, make_storage: Callable[..., S3Storage], fresh_bucket: str, s3_server: MotoServer
    ) -> tuple[S3Storage, str]:
        s3_server.faults.refused_keys.add("UNKNOWNKEY")
        return make_storage(bucket=fresh_bucket, access_key_id="UNKNOWNKEY", secret_access_key="wrong-secret-value"), "wrong-secret-value"

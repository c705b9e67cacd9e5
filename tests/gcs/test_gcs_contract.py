"""offload-gcs keeps the storage contract, against the GCS emulator."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gcs_harness import secret_of

from offload.testing import StorageContract
from offload_gcs import GcsStorage


class TestGcsContract(StorageContract):
    #: gcp-storage-emulator serves a signed URL without checking its signature or expiry.
    checks_expiry = False

    @pytest.fixture
    def storage(self, make_storage: Callable[..., GcsStorage], bucket: str) -> GcsStorage:
        return make_storage(bucket)

    @pytest.fixture
    def missing_bucket_storage(self, make_storage: Callable[..., GcsStorage]) -> GcsStorage:
        return make_storage("offload-no-such-bucket")

    @pytest.fixture
    def wrong_credentials_storage(self, make_storage: Callable[..., GcsStorage], bucket: str, refused_account: dict[str, str]) -> tuple[GcsStorage, str]:
        return make_storage(bucket, info=refused_account), secret_of(refused_account)

"""The contract every storage must keep, as a pytest class to subclass.

In a storage's tests::

    from offload.testing import StorageContract

    class TestMyStorageContract(StorageContract):
        @pytest.fixture
        def storage(self):
            return MyStorage(MyConfig(bucket=a_fresh_bucket()))   # the bucket exists, empty

        @pytest.fixture
        def missing_bucket_storage(self):
            return MyStorage(MyConfig(bucket="no-such-bucket"))

        @pytest.fixture
        def wrong_credentials_storage(self):
            return MyStorage(MyConfig(bucket=..., secret="wrong")), "wrong"   # or pytest.skip(why)

The presigned URLs are fetched with plain HTTP (``urllib``), without credentials, as a
task's container fetches them with ``curl``.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from offload.executor.storage import PUT_CONTENT_TYPE, URL_MARGIN, Storage, StorageError, StorageNotFound


def http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    """Status and body of one plain HTTP request (no credentials), as a container makes it."""
    headers = {"Content-Type": PUT_CONTENT_TYPE} if method == "PUT" else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


class StorageContract:
    """Tests every storage must pass; subclass it and provide the three fixtures."""

    #: Whether the service behind the tests refuses an expired URL (an emulator may not).
    checks_expiry = True

    @pytest.fixture
    def storage(self) -> Storage:
        raise NotImplementedError("provide a `storage` fixture: a Storage on a fresh, existing bucket")

    @pytest.fixture
    def missing_bucket_storage(self) -> Storage:
        raise NotImplementedError("provide a `missing_bucket_storage` fixture: a Storage whose bucket does not exist")

    @pytest.fixture
    def wrong_credentials_storage(self) -> tuple[Storage, str]:
        raise NotImplementedError("provide a `wrong_credentials_storage` fixture: (a Storage with refused credentials, its secret)")

    def test_put_and_get(self, storage: Storage, tmp_path: Path) -> None:
        storage.put("run-1/a.bin", b"\x00bytes\xff")
        assert storage.get("run-1/a.bin") == b"\x00bytes\xff"
        path = tmp_path / "project.tar.gz"
        path.write_bytes(bytes(range(256)) * 20_000)  # 5 MB: a project archive, past any one-shot limit
        storage.put_file("run-1/project.tar.gz", str(path))
        assert storage.get("run-1/project.tar.gz") == path.read_bytes()
        with open(path, "rb") as f:
            f.seek(1000)
            storage.put("run-1/again.tar.gz", f)
        assert storage.get("run-1/again.tar.gz") == path.read_bytes()[1000:], "a file is stored from where it stands"
        assert storage.exists("run-1/a.bin")

    def test_a_missing_key_is_not_found(self, storage: Storage) -> None:
        assert not storage.exists("nothing/here")
        with pytest.raises(StorageNotFound):
            storage.get("nothing/here")

    def test_delete_and_delete_again(self, storage: Storage) -> None:
        storage.put("gone.txt", b"x")
        storage.delete("gone.txt")
        assert not storage.exists("gone.txt")
        storage.delete("gone.txt")  # not there: not an error

    def test_presigned_get_needs_no_credentials(self, storage: Storage) -> None:
        storage.put("in/project.tar.gz", b"the project")
        status, body = http(storage.presign_get("in/project.tar.gz", 600))
        assert (status, body) == (200, b"the project")

    def test_presigned_put_sends_the_output_back(self, storage: Storage) -> None:
        status, _ = http(storage.presign_put("out/io.tar.gz", 600), "PUT", b"the output")
        assert status in (200, 201, 204)
        assert storage.get("out/io.tar.gz") == b"the output"

    def test_a_presigned_url_expires(self, storage: Storage) -> None:
        if not self.checks_expiry:
            pytest.skip("the service behind these tests does not check a URL's expiry")
        storage.put("short.txt", b"soon gone")
        url = storage.presign_get("short.txt", 1)
        time.sleep(2.5)
        status, _ = http(url)
        assert status in (400, 401, 403)

    def test_url_lifetime_covers_the_task_timeout(self, storage: Storage) -> None:
        assert storage.url_lifetime(None) == storage.max_url_expiry
        assert storage.url_lifetime(600) == 600 + URL_MARGIN
        assert storage.url_lifetime(10 * storage.max_url_expiry) == storage.max_url_expiry

    def test_uri_names_the_key(self, storage: Storage) -> None:
        uri = storage.uri("run-1/project.tar.gz")
        assert uri.endswith("run-1/project.tar.gz") and "://" in uri

    def test_list(self, storage: Storage) -> None:
        if not storage.can_list:
            pytest.skip(f"the {storage.name} storage cannot list")
        storage.put("p1/a", b"aa")
        storage.put("p1/b/c", b"ccc")
        storage.put("p2/d", b"d")
        found = {o.key: o.size for o in storage.list("p1/")}
        assert found == {"p1/a": 2, "p1/b/c": 3}
        assert {o.key for o in storage.list()} >= {"p1/a", "p1/b/c", "p2/d"}
        assert all(abs(o.modified - time.time()) < 3600 for o in storage.list("p1/"))

    def test_check_says_ready(self, storage: Storage) -> None:
        health = storage.check()
        assert health.ok, health

    def test_a_missing_bucket_is_one_clear_error(self, missing_bucket_storage: Storage) -> None:
        health = missing_bucket_storage.check()
        assert not health.ok
        assert "not found" in health.summary or "does not exist" in health.summary
        with pytest.raises(StorageError) as info:
            missing_bucket_storage.put("x", b"x")
        assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
        with pytest.raises(StorageError) as info:
            missing_bucket_storage.get("x")
        assert not isinstance(info.value, StorageNotFound), "a missing bucket is not a missing key"

    def test_refused_credentials_are_one_clear_error(self, wrong_credentials_storage: tuple[Storage, str]) -> None:
        storage, secret = wrong_credentials_storage
        health = storage.check()
        assert not health.ok
        assert secret not in health.summary + "".join(health.details)
        with pytest.raises(StorageError) as info:
            storage.put("x", b"x")
        assert secret not in str(info.value) and "\n" not in str(info.value)

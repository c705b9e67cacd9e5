"""GcsStorage beyond the contract: prefixes, signed URLs, credentials and what its errors say."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gcs_harness import REFUSED_EMAIL, Emulator, TokenServer, free_port, secret_of

from offload import StorageError, StorageNotFound
from offload.testing.storage_contract import http
from offload_gcs import GcsConfig, GcsStorage

Make = Callable[..., GcsStorage]


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


def test_keys_are_relative_to_the_prefix(make_storage: Make, bucket: str, admin: Any) -> None:
    runs = make_storage(bucket, prefix="team-a/runs")
    other = make_storage(bucket)  # offload/
    runs.put("r1/project.tar.gz", b"a")
    other.put("r1/project.tar.gz", b"bb")
    assert {o.key for o in runs.list()} == {"r1/project.tar.gz"}
    assert [(o.key, o.size) for o in other.list("r1/")] == [("r1/project.tar.gz", 2)]
    assert runs.uri("r1/project.tar.gz") == f"gs://{bucket}/team-a/runs/r1/project.tar.gz"
    assert sorted(b.name for b in admin.list_blobs(bucket)) == ["offload/r1/project.tar.gz", "team-a/runs/r1/project.tar.gz"]
    assert repr(runs) == f"GcsStorage(gs://{bucket}/team-a/runs/)"


def test_put_stores_a_stream_from_where_it_is(storage: GcsStorage, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40_000  # 10 MB, past the one-request limit: a resumable upload
    storage.put("big.bin", io.BytesIO(data))
    assert storage.get("big.bin") == data
    with io.BytesIO(b"skipped:kept") as f:
        f.seek(8)
        storage.put("tail.bin", f)
    assert storage.get("tail.bin") == b"kept"
    path = tmp_path / "archive"
    path.write_bytes(b"header" + data)
    with open(path, "rb") as g:
        g.seek(6)
        storage.put("file-tail.bin", g)  # a file of known size, not at its start
    assert storage.get("file-tail.bin") == data


def test_put_from_a_pipe(storage: GcsStorage) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"through a pipe")
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        storage.put("piped", f)
    assert storage.get("piped") == b"through a pipe"


def test_signed_urls_are_v4_capped_at_seven_days(storage: GcsStorage, emulator: Emulator) -> None:
    get_url = storage.presign_get("in/p.tar.gz", 10 * storage.max_url_expiry)
    put_url = storage.presign_put("out/io.tar.gz", 600)
    assert get_url.startswith(f"{emulator.url}/{storage.config.bucket}/offload/in/p.tar.gz?")
    get, put = _query(get_url), _query(put_url)
    assert get["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert get["X-Goog-Expires"] == str(7 * 24 * 3600)
    assert get["X-Goog-Credential"].startswith("offload@offload-test.iam.gserviceaccount.com/")
    assert put["X-Goog-Expires"] == "600"
    assert "content-type" in put["X-Goog-SignedHeaders"].split(";")  # the container must send PUT_CONTENT_TYPE


def test_signed_urls_need_a_key(monkeypatch: pytest.MonkeyPatch, emulator: Emulator, bucket: str) -> None:
    """STORAGE_EMULATOR_HOST with no credentials: anonymous access works, signing says what to configure."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url.removeprefix("http://"))
    storage = GcsStorage(GcsConfig(bucket=bucket))
    try:
        storage.put("a", b"anonymous")
        assert storage.get("a") == b"anonymous"
        with pytest.raises(StorageError, match="service-account key") as info:
            storage.presign_get("a", 60)
        assert "\n" not in str(info.value) and "signBlob" in str(info.value)
        health = storage.check()
        assert not health.ok and "cannot sign URLs" in health.summary
    finally:
        storage.close()


def test_the_emulator_host_variable_is_honoured(monkeypatch: pytest.MonkeyPatch, emulator: Emulator, bucket: str, account: dict[str, str]) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    config, problems = GcsStorage.parse_config({"bucket": bucket, "credentials": {"json": {"content": json.dumps(account)}}}, "t")
    assert not problems and config is not None
    storage = GcsStorage(config)
    try:
        storage.put("k", b"v")
        status, body = http(storage.presign_get("k", 60))
        assert (status, body) == (200, b"v")
        assert storage.check().ok
    finally:
        storage.close()


def test_no_credentials_found(bucket: str) -> None:
    """No key, no ADC (conftest hides them): one line naming Digdag's key."""
    storage = GcsStorage(GcsConfig(bucket=bucket))
    health = storage.check()
    assert not health.ok
    assert health.summary == (f"gcs: gs://{bucket}: no credentials found: set gcs.credentials.json.path or configure Application Default Credentials")
    with pytest.raises(StorageError, match="no credentials found"):
        storage.put("x", b"x")


def test_refused_credentials_say_so(make_storage: Make, bucket: str, refused_account: dict[str, str], token_server: TokenServer) -> None:
    storage = make_storage(bucket, info=refused_account)
    health = storage.check()
    assert not health.ok
    assert health.summary == f"gcs: gs://{bucket}: credentials refused by the token endpoint (invalid_grant)"
    assert f"service account {REFUSED_EMAIL}" in health.details[0]
    for call in (lambda: storage.get("k"), lambda: storage.exists("k"), lambda: storage.delete("k"), lambda: storage.list()):
        with pytest.raises(StorageError) as info:
            call()
        assert not isinstance(info.value, StorageNotFound)
        assert "credentials refused" in str(info.value) and f"gs://{bucket}/" in str(info.value)
        assert secret_of(refused_account) not in str(info.value)
    assert REFUSED_EMAIL in token_server.requests


def test_a_missing_bucket_is_not_a_missing_key(make_storage: Make) -> None:
    storage = make_storage("offload-no-such-bucket")
    for call in (lambda: storage.get("k"), lambda: storage.exists("k"), lambda: storage.delete("k"), lambda: storage.list()):
        with pytest.raises(StorageError, match="bucket offload-no-such-bucket not found") as info:
            call()
        assert not isinstance(info.value, StorageNotFound)
    health = storage.check()
    assert health.summary == "gcs: bucket offload-no-such-bucket not found (gs://offload-no-such-bucket)"


def test_an_unreachable_endpoint_is_one_line(make_storage: Make, bucket: str) -> None:
    port = free_port()  # nothing listens there
    storage = make_storage(bucket, endpoint=f"http://127.0.0.1:{port}")
    storage.retry_timeout = storage.check_timeout = 0.5
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        storage.put("x", b"x")
    assert str(info.value).startswith(f"gcs: put gs://{bucket}/offload/x failed: cannot reach http://127.0.0.1:{port}")
    assert "\n" not in str(info.value)
    health = storage.check()
    assert not health.ok and f"cannot reach http://127.0.0.1:{port}" in health.summary
    assert time.monotonic() - started < 15


def test_a_broken_private_key_is_reported_without_it(make_storage: Make, bucket: str, account: dict[str, str]) -> None:
    lines = account["private_key"].splitlines()
    lines[5] = lines[5][::-1]  # still PEM-shaped, no longer a key
    broken = dict(account, private_key="\n".join(lines))
    storage = make_storage(bucket, info=broken)
    with pytest.raises(StorageError, match="cannot be used") as info:
        storage.put("x", b"x")
    assert secret_of(broken) not in str(info.value) and "\n" not in str(info.value)
    assert not storage.check().ok


def test_secrets_stay_out_of_reprs(storage: GcsStorage, account: dict[str, str]) -> None:
    secret = secret_of(account)
    storage.put("k", b"v")
    shown = repr(storage) + repr(storage.config) + str(storage.check())
    assert secret not in shown and "private_key" not in shown
    assert storage.config.client_email == account["client_email"]


def test_importing_the_plugin_loads_no_google_library() -> None:
    code = (
        "import sys, offload_gcs.plugin\n"
        "from offload_gcs import GcsStorage\n"
        "GcsStorage.parse_config({'bucket': 'b'}, 'x')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('google', 'requests'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"

"""Fixtures of the GCS tests: one emulator and one fake OAuth endpoint for the session.

Nothing here reaches Google: the storages are pointed at the emulator on 127.0.0.1, the
service accounts' ``token_uri`` at the fake endpoint, and Application Default Credentials
find nothing (no key file, an empty gcloud config, no metadata server).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gcs_harness import GOOD_EMAIL, PROJECT, REFUSED_EMAIL, Emulator, TokenServer, loopback_only, new_private_key, offline_environment, service_account_info

offline_environment()  # before google-auth is imported

from offload_gcs import GcsConfig, GcsStorage  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _no_regional_access_boundary_lookup() -> Iterator[None]:
    """google-auth 2.4x asks iamcredentials.googleapis.com, after each token, where the service
    account may be used (in a background thread): not from these tests."""
    from google.auth import credentials

    with pytest.MonkeyPatch.context() as mp:
        boundary = getattr(credentials, "CredentialsWithRegionalAccessBoundary", None)
        if boundary is not None and hasattr(boundary, "_is_regional_access_boundary_lookup_required"):
            mp.setattr(boundary, "_is_regional_access_boundary_lookup_required", lambda self: False)
        yield


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    server = Emulator()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def account(token_server: TokenServer) -> dict[str, str]:
    """The key of a service account the token endpoint accepts."""
    return service_account_info(GOOD_EMAIL, new_private_key(), token_server.url)


@pytest.fixture(scope="session")
def refused_account(token_server: TokenServer) -> dict[str, str]:
    """The key of a service account the token endpoint refuses (invalid_grant)."""
    return service_account_info(REFUSED_EMAIL, new_private_key(), token_server.url)


@pytest.fixture(scope="session")
def admin(emulator: Emulator) -> Any:
    """A google-cloud-storage client on the emulator, to make buckets (offload never makes one)."""
    from google.auth import credentials
    from google.cloud import storage

    anonymous: Any = credentials.AnonymousCredentials
    client = storage.Client(project=PROJECT, credentials=anonymous(), client_options={"api_endpoint": emulator.url})
    yield client
    client.close()


@pytest.fixture
def bucket(admin: Any) -> str:
    """A fresh, empty bucket in the emulator."""
    name = f"offload-test-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(name)
    return name


@pytest.fixture
def make_storage(emulator: Emulator, account: dict[str, str]) -> Iterator[Callable[..., GcsStorage]]:
    """``make_storage(bucket, **keys)``: a GcsStorage parsed from a ``gcs:`` section on the emulator."""
    made: list[GcsStorage] = []

    def make(bucket: str, info: dict[str, str] | None = None, **keys: Any) -> GcsStorage:
        section: dict[str, Any] = {"bucket": bucket, "endpoint": emulator.url, "credentials": {"json": {"content": info or account}}}
        section.update(keys)
        section = {k: v for k, v in section.items() if v is not None}
        config, problems = GcsStorage.parse_config(section, "test.gcs")
        assert not problems and isinstance(config, GcsConfig), problems
        storage = GcsStorage(config)
        made.append(storage)
        return storage

    yield make
    for storage in made:
        storage.close()


@pytest.fixture
def storage(make_storage: Callable[..., GcsStorage], bucket: str) -> GcsStorage:
    return make_storage(bucket)

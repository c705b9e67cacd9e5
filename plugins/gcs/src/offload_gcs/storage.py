"""Google Cloud Storage as the temporal storage: ``temporal_storage.type: gcs``.

The driver talks to GCS with google-cloud-storage and the configured credentials; a
task's container gets V4 signed URLs (GET for the project, PUT for its output) and needs
no credentials of its own. Signing is done locally with the service account's private
key, so it needs a key: Application Default Credentials from the metadata server or a
user login hold a token only.

google-cloud-storage is imported on first use, never at import, so that loading the
plugin (every ``offload`` command does) and parsing its config stay cheap.
"""

from __future__ import annotations

import builtins
import datetime
import json
import os
import threading
from collections.abc import Callable
from typing import IO, Any, TypeVar

from offload import PUT_CONTENT_TYPE, Health, Problem, Storage, StorageError, StorageNotFound, StoredObject
from offload_gcs.config import GcsConfig, parse_gcs_config
from offload_gcs.errors import google_errors, is_not_found, one_line, reason
from offload_gcs.streams import upload_source

T = TypeVar("T")

#: What the driver does with the bucket: read, write, list and delete objects.
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: Resumable uploads send the file in chunks of this size (a multiple of 256 KiB), not 100 MiB at once.
UPLOAD_CHUNK = 16 * 1024 * 1024
SIGNING_HELP = (
    "V4 signed URLs need a service-account key: set gcs.credentials.json.path (or .content) to the key of a service "
    "account that may read and write the bucket (signing through the IAM signBlob API is not supported)"
)


class GcsStorage(Storage):
    """Objects under ``gs://bucket/prefix``; keys given to the methods are relative to the prefix."""

    name = "gcs"
    config_type = GcsConfig
    install_hint = "pip install offload-gcs"
    can_list = True
    #: How long one operation retries transient failures (429, 5xx, connection errors);
    #: google-cloud-storage's default is 120 s.
    retry_timeout = 60.0
    #: How long :meth:`check` tries.
    check_timeout = 10.0

    config: GcsConfig

    def __init__(self, config: GcsConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._client_obj: Any = None
        self._credentials: Any = None
        self._described = "not loaded yet"

    def __repr__(self) -> str:
        return f"GcsStorage(gs://{self.config.bucket}/{self.config.prefix})"

    @classmethod
    def parse_config(cls, data: Any, where: str) -> tuple[GcsConfig | None, builtins.list[Problem]]:
        return parse_gcs_config(data, where)

    # -- clients -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str | None:
        """The configured endpoint, else ``STORAGE_EMULATOR_HOST`` (as google-cloud-storage reads it)."""
        if self.config.endpoint:
            return self.config.endpoint
        host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
        if not host:
            return None
        return (host if "://" in host else f"http://{host}").rstrip("/")

    def _load_credentials(self) -> tuple[Any, str | None, str]:
        """The credentials, the project to bill (when known) and how to name them in messages."""
        cfg = self.config
        if cfg.credentials_json is not None:
            from google.oauth2 import service_account

            key_credentials: Any = service_account.Credentials  # google-auth leaves its factories untyped
            info = json.loads(cfg.credentials_json)
            info.setdefault("token_uri", DEFAULT_TOKEN_URI)
            try:
                creds = key_credentials.from_service_account_info(info, scopes=SCOPES)
            except (ValueError, TypeError, KeyError) as e:  # the text may quote the key: never shown
                why = f"the service-account key from {cfg.credentials_source} cannot be used ({type(e).__name__})"
                raise StorageError(f"gcs: gs://{cfg.bucket}: {why}: create a new key") from None
            project = cfg.project or (info.get("project_id") if isinstance(info.get("project_id"), str) else None)
            return creds, project, f"service account {cfg.client_email} (key from {cfg.credentials_source})"
        if os.environ.get("STORAGE_EMULATOR_HOST") and not cfg.endpoint:
            from google.auth import credentials

            anonymous: Any = credentials.AnonymousCredentials
            return anonymous(), cfg.project, "none (STORAGE_EMULATOR_HOST is set)"
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            creds, project = google.auth.default(scopes=SCOPES)
        except DefaultCredentialsError as e:
            raise StorageError(f"gcs: gs://{cfg.bucket}: {reason(e, self._endpoint_name)}") from None
        account = getattr(creds, "service_account_email", None)
        kind = account if isinstance(account, str) and "@" in account else type(creds).__name__
        return creds, cfg.project or project, f"Application Default Credentials ({kind})"

    def _client(self) -> Any:
        with self._lock:
            if self._client_obj is None:
                from google.cloud import storage

                creds, project, described = self._load_credentials()
                options = {"api_endpoint": self.endpoint} if self.endpoint else None
                try:
                    # project=None (not left out) keeps the client from looking for a default project
                    client = storage.Client(project=project, credentials=creds, client_options=options)
                except ValueError as e:
                    raise StorageError(f"gcs: gs://{self.config.bucket}: cannot make a client: {one_line(str(e))}") from None
                if getattr(client, "_bucket_metadata_cache", None) is not None:
                    # google-cloud-storage 3.x fetches each bucket's metadata in a background thread
                    # (for OpenTelemetry span attributes, which offload does not use): a request that
                    # needs storage.buckets.get and keeps retrying after a failed call. Off.
                    client._bucket_metadata_cache = None
                self._client_obj = client
                self._credentials, self._described = creds, described
            return self._client_obj

    @property
    def _endpoint_name(self) -> str:
        return self.endpoint or DEFAULT_ENDPOINT

    def _retry(self, timeout: float | None = None) -> Any:
        from google.cloud.storage.retry import DEFAULT_RETRY

        seconds = timeout or self.retry_timeout
        if hasattr(DEFAULT_RETRY, "with_timeout"):
            return DEFAULT_RETRY.with_timeout(seconds)
        return DEFAULT_RETRY.with_deadline(seconds)  # google-api-core before 2.17

    def _blob(self, key: str, chunk_size: int | None = None) -> Any:
        return self._client().bucket(self.config.bucket).blob(self.config.prefix + key, chunk_size=chunk_size)

    def _bucket_missing(self) -> bool:
        """Whether the bucket is not there (GCS answers 404 for a missing bucket and a missing object alike)."""
        try:
            builtins.list(self._client().list_blobs(self.config.bucket, prefix=self.config.prefix, max_results=1, retry=self._retry(self.check_timeout)))
        except google_errors() as e:
            return is_not_found(e)
        return False

    def _call(self, action: str, key: str | None, call: Callable[[], T], missing_key: Callable[[], T] | None = None) -> T:
        """``call()``, its errors made one-line :class:`StorageError` s naming the bucket.

        A 404 is the bucket missing, unless ``missing_key`` is given and the bucket is there:
        then it is the key, and ``missing_key()`` answers.
        """
        where = self.uri(key) if key is not None else f"gs://{self.config.bucket}/{self.config.prefix}"
        try:
            return call()
        except google_errors() as e:
            if not is_not_found(e):
                raise StorageError(f"gcs: {action} {where} failed: {reason(e, self._endpoint_name)}") from None
        # a 404: outside the except clause, so that what follows is not chained to Google's error
        if missing_key is not None and not self._bucket_missing():
            return missing_key()
        raise StorageError(f"gcs: {action} {where} failed: bucket {self.config.bucket} not found")

    # -- the contract ----------------------------------------------------------------------

    def put(self, key: str, data: bytes | IO[bytes]) -> None:
        blob = self._blob(key, chunk_size=UPLOAD_CHUNK)
        source, size = (bytes(data), None) if isinstance(data, bytes | bytearray | memoryview) else upload_source(data)
        if isinstance(source, bytes):
            payload = source
            self._call("put", key, lambda: blob.upload_from_string(payload, content_type=PUT_CONTENT_TYPE, retry=self._retry()))
        else:
            stream = source
            self._call("put", key, lambda: blob.upload_from_file(stream, size=size, content_type=PUT_CONTENT_TYPE, retry=self._retry()))

    def get(self, key: str) -> bytes:
        blob = self._blob(key)

        def missing() -> bytes:
            raise StorageNotFound(f"gcs: {self.uri(key)} not found")

        return bytes(self._call("get", key, lambda: blob.download_as_bytes(retry=self._retry()), missing))

    def exists(self, key: str) -> bool:
        blob = self._blob(key)

        def found() -> bool:
            blob.reload(retry=self._retry())
            return True

        return self._call("look up", key, found, lambda: False)

    def delete(self, key: str) -> None:
        blob = self._blob(key)
        self._call("delete", key, lambda: blob.delete(retry=self._retry()), lambda: None)

    def presign_get(self, key: str, expires: int) -> str:
        return self._presign(key, expires, "GET")

    def presign_put(self, key: str, expires: int) -> str:
        return self._presign(key, expires, "PUT")

    def _signing_problem(self) -> str | None:
        from google.auth.credentials import Signing

        if isinstance(self._credentials, Signing):
            return None
        return f"cannot sign URLs with {self._described}: {SIGNING_HELP}"

    def _presign(self, key: str, expires: int, method: str) -> str:
        blob = self._blob(key)
        problem = self._signing_problem()
        if problem is not None:
            raise StorageError(f"gcs: {self.uri(key)}: {problem}")
        kwargs: dict[str, Any] = {
            "version": "v4",
            "expiration": datetime.timedelta(seconds=max(1, min(int(expires), self.max_url_expiry))),
            "method": method,
            "credentials": self._credentials,
        }
        if self.endpoint:
            kwargs["api_access_endpoint"] = self.endpoint
        if method == "PUT":
            kwargs["content_type"] = PUT_CONTENT_TYPE
        try:
            return str(blob.generate_signed_url(**kwargs))
        except (ValueError, TypeError, AttributeError) as e:
            raise StorageError(f"gcs: cannot sign a {method} URL for {self.uri(key)} ({type(e).__name__})") from None
        except google_errors() as e:
            raise StorageError(f"gcs: cannot sign a {method} URL for {self.uri(key)}: {reason(e, self._endpoint_name)}") from None

    def uri(self, key: str) -> str:
        return f"gs://{self.config.bucket}/{self.config.prefix}{key}"

    def list(self, prefix: str = "") -> builtins.list[StoredObject]:
        base = self.config.prefix

        def run() -> builtins.list[StoredObject]:
            found = []
            for blob in self._client().list_blobs(self.config.bucket, prefix=base + prefix, retry=self._retry()):
                name = str(blob.name)
                if not name.startswith(base):
                    continue
                modified = blob.updated.timestamp() if blob.updated is not None else 0.0
                found.append(StoredObject(name[len(base) :], int(blob.size or 0), modified))
            return found

        return self._call("list", prefix, run)

    def check(self) -> Health:
        bucket = self.config.bucket
        try:
            client = self._client()
        except StorageError as e:
            return Health(ok=False, summary=str(e))
        details = (f"credentials: {self._described}", f"endpoint: {self._endpoint_name}")
        try:
            retry, timeout = self._retry(self.check_timeout), self.check_timeout
            builtins.list(client.list_blobs(bucket, prefix=self.config.prefix, max_results=1, retry=retry, timeout=timeout))
        except google_errors() as e:
            if is_not_found(e):
                return Health(ok=False, summary=f"gcs: bucket {bucket} not found (gs://{bucket})", details=details)
            return Health(ok=False, summary=f"gcs: gs://{bucket}: {reason(e, self._endpoint_name)}", details=details)
        problem = self._signing_problem()
        if problem is not None:
            return Health(ok=False, summary=f"gcs: gs://{bucket} is reachable, but {problem}", details=details)
        return Health(ok=True, summary=f"gcs: gs://{bucket}/{self.config.prefix} is reachable", details=details)

    def close(self) -> None:
        with self._lock:
            client, self._client_obj = self._client_obj, None
        close = getattr(client, "close", None)
        if callable(close):
            close()

"""S3 as an offload storage: put, get and presign through boto3, errors said in one line.

boto3 is imported when the storage is first used, not when the plugin is loaded, so a
run that never ships a task to ECS or Kubernetes does not pay for it.

Credentials that AWS rejects as expired (a rotated session, an instance role renewed)
make a new client, re-reading the default chain, and the call is tried again with
backoff; other errors are not retried here (botocore retries throttling itself).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, ClassVar

from offload import Health, Problem, Storage, StorageError, StorageNotFound, StoredObject
from offload_s3.config import S3Config, parse_s3_config

if TYPE_CHECKING:
    from botocore.client import BaseClient

#: Error codes that mean "these credentials no longer work": make a new client and try again.
EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"})
#: Error codes that mean "these credentials are not valid here".
REFUSED = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "UnrecognizedClientException", "InvalidToken"})
NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
NO_BUCKET = frozenset({"NoSuchBucket"})
DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled"})


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
    return " ".join(str(exc).split())


class S3Storage(Storage):
    """A bucket (and a prefix in it) on S3 or an S3-compatible service."""

    name = "s3"
    config_type: ClassVar[type] = S3Config
    install_hint = "pip install offload-s3"
    can_list = True
    #: How often a call is tried after AWS said the credentials expired, and the first wait.
    credential_attempts = 5
    credential_delay = 0.5

    def __init__(self, config: S3Config, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(config)
        self.config: S3Config
        self._client: BaseClient | None = None
        self._lock = threading.Lock()
        self._sleep = sleep
        #: How many times the client was made again after expired credentials.
        self.rebuilds = 0

    @classmethod
    def parse_config(cls, data: Any, where: str) -> tuple[Any, list[Problem]]:
        return parse_s3_config(data, where)

    # -- the client ------------------------------------------------------------------

    def _make(self) -> BaseClient:
        import boto3
        from botocore.config import Config

        c = self.config
        session = boto3.session.Session(
            aws_access_key_id=c.access_key_id or None,
            aws_secret_access_key=c.secret_access_key or None,
            aws_session_token=c.session_token or None,
            region_name=c.region or None,
        )
        config = Config(retries={"max_attempts": 4, "mode": "standard"}, signature_version="s3v4", user_agent_extra="offload-s3")
        return session.client("s3", endpoint_url=c.endpoint_url, config=config)

    def client(self) -> BaseClient:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def _rebuild(self) -> None:
        with self._lock:
            self._client = None
            self.rebuilds += 1

    def _key(self, key: str) -> str:
        return self.config.prefix + key

    def uri(self, key: str) -> str:
        return f"s3://{self.config.bucket}/{self._key(key)}"

    def _call(self, operation: str, what: str, **params: Any) -> Any:
        """``client.operation(Bucket=..., **params)``; every failure a one-line :class:`StorageError`."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        bucket = self.config.bucket
        attempt = 0
        while True:
            try:
                return getattr(self.client(), operation)(Bucket=bucket, **params)
            except NoCredentialsError:
                raise StorageError(
                    "s3: no AWS credentials found: set s3.credentials.access-key-id and secret-access-key, "
                    "or configure the default chain (environment, ~/.aws, instance role)"
                ) from None
            except ClientError as e:
                code = _code(e)
                if code in EXPIRED and attempt + 1 < self.credential_attempts:
                    attempt += 1
                    delay = self.credential_delay * 2 ** (attempt - 1)
                    self._sleep(delay / 2 + random.uniform(0, delay / 2))
                    self._rebuild()
                    continue
                if code in NOT_FOUND and operation in ("get_object", "head_object"):
                    raise StorageNotFound(f"s3: {what}: not found") from None
                if code in NO_BUCKET or (code in NOT_FOUND and operation == "head_bucket"):
                    raise StorageError(f"s3: bucket {bucket} not found") from None
                if code in EXPIRED or code in REFUSED:
                    raise StorageError(f"s3: AWS rejected the credentials ({code}) while {what}; renew or fix them") from None
                if code in DENIED:
                    raise StorageError(f"s3: access denied while {what} (check the IAM policy on s3://{bucket}/{self.config.prefix})") from None
                raise StorageError(f"s3: {what} failed: {_message(e)}") from None
            except BotoCoreError as e:
                raise StorageError(f"s3: {what} failed: {_message(e)}") from None

    # -- the contract ------------------------------------------------------------------

    def put(self, key: str, data: bytes | IO[bytes]) -> None:
        self._call("put_object", f"writing {self.uri(key)}", Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        response = self._call("get_object", f"reading {self.uri(key)}", Key=self._key(key))
        return bytes(response["Body"].read())

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", f"looking for {self.uri(key)}", Key=self._key(key))
        except StorageNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self._call("delete_object", f"deleting {self.uri(key)}", Key=self._key(key))

    def _presign(self, operation: str, key: str, expires: int) -> str:
        from botocore.exceptions import NoCredentialsError

        expires = max(1, min(int(expires), self.max_url_expiry))
        try:
            params = {"Bucket": self.config.bucket, "Key": self._key(key)}
            return str(self.client().generate_presigned_url(operation, Params=params, ExpiresIn=expires))
        except NoCredentialsError:
            raise StorageError(
                "s3: no AWS credentials to sign the URLs: set s3.credentials.access-key-id and secret-access-key, or configure the default chain"
            ) from None

    def presign_get(self, key: str, expires: int) -> str:
        return self._presign("get_object", key, expires)

    def presign_put(self, key: str, expires: int) -> str:
        return self._presign("put_object", key, expires)

    def list(self, prefix: str = "") -> list[StoredObject]:
        found: list[StoredObject] = []
        token: str | None = None
        start = len(self.config.prefix)
        while True:
            params: dict[str, Any] = {"Prefix": self._key(prefix)}
            if token:
                params["ContinuationToken"] = token
            page = self._call("list_objects_v2", f"listing {self.uri(prefix)}", **params)
            for item in page.get("Contents", []):
                found.append(StoredObject(item["Key"][start:], int(item.get("Size", 0)), item["LastModified"].timestamp()))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found

    def check(self) -> Health:
        where = f"s3://{self.config.bucket}/{self.config.prefix}"
        try:
            self._call("head_bucket", f"looking for bucket {self.config.bucket}")
        except StorageError as e:
            return Health(False, str(e), (f"storage: {where}",))
        return Health(True, f"s3: ready (bucket {self.config.bucket})", (f"storage: {where}", f"bucket {self.config.bucket}: reachable"))

    def close(self) -> None:
        with self._lock:
            self._client = None



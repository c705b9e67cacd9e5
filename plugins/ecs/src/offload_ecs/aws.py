"""boto3 clients for one cluster, rebuilt with backoff when AWS rejects the credentials.

Every call goes through :meth:`Aws.call`, so expired or rotated credentials
(``ExpiredTokenException``, ``InvalidClientTokenId``, ``UnrecognizedClientException``)
never lose a tracked task: the session is made again (re-reading the default chain)
and the call is retried. Throttling is retried by botocore itself (``max_retries``).

boto3 and botocore are imported by the functions that talk to AWS, not with this module:
loading the plugin (every ``offload`` run does) stays cheap where ECS is not used.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from offload import BackendError
from offload_ecs.config import EcsConfig

if TYPE_CHECKING:  # boto3 is imported when a client is first made, not with the plugin
    import boto3
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

#: Error codes that mean "these credentials no longer work" (Airflow's list).
CREDENTIAL_ERRORS = frozenset({"ExpiredTokenException", "ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException", "RequestExpired"})


def _client_error(exc: BaseException) -> ClientError | None:
    """``exc`` if it is botocore's ``ClientError``, else ``None`` (when botocore is not
    loaded, nothing can have raised one: it is not imported for that)."""
    if "botocore.exceptions" not in sys.modules:
        return None
    from botocore.exceptions import ClientError

    return exc if isinstance(exc, ClientError) else None


def error_code(exc: BaseException) -> str:
    error = _client_error(exc)
    if error is not None:
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    error = _client_error(exc)
    if error is not None:
        err = error.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
    return str(exc)


class Aws:
    """The clients of one configured cluster (ECS, CloudWatch Logs, tagging); the temporal
    storage is the storage plugin's business."""

    #: How often a call is tried again after the credentials were rejected, and the first wait.
    credential_attempts = 5
    credential_delay = 0.5

    def __init__(self, config: EcsConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._clients: dict[tuple[str, str | None], BaseClient] = {}
        self._lock = threading.Lock()
        self._sleep = sleep
        self.rebuilds = 0
        self._region: str | None = None

    @property
    def region(self) -> str | None:
        """The configured region, else the default chain's (``AWS_DEFAULT_REGION``, ``~/.aws/config``)."""
        if self._region is None:
            self._region = self.config.settings.region or self._session().region_name
        return self._region

    def _session(self) -> boto3.session.Session:
        import boto3

        s = self.config.settings
        return boto3.session.Session(
            aws_access_key_id=s.access_key_id or None,
            aws_secret_access_key=s.secret_access_key or None,
            aws_session_token=s.session_token or None,
            region_name=s.region or None,
        )

    def _make(self, service: str, region: str | None) -> BaseClient:
        from botocore.config import Config

        s = self.config.settings
        retries: Any = {"max_attempts": s.max_retries + 1, "mode": "standard"}
        config = Config(retries=retries, user_agent_extra="offload-ecs")
        return self._session().client(service, region_name=region or None, endpoint_url=s.endpoint_url or None, config=config)

    def client(self, service: str, region: str | None = None) -> BaseClient:
        from botocore.exceptions import NoRegionError

        key = (service, region)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                try:
                    client = self._make(service, region)
                except NoRegionError:
                    raise BackendError("ecs: no AWS region: set command_executor.ecs.<name>.region or AWS_DEFAULT_REGION") from None
                self._clients[key] = client
            return client

    def rebuild(self) -> None:
        """Forget every client, so the next call makes new ones with fresh credentials."""
        with self._lock:
            self._clients.clear()
            self.rebuilds += 1

    def call(self, service: str, operation: str, region: str | None = None, **params: Any) -> Any:
        """``client.operation(**params)``; credential errors rebuild the client and retry with backoff."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        attempt = 0
        while True:
            client = self.client(service, region)
            try:
                return getattr(client, operation)(**params)
            except NoCredentialsError:
                raise BackendError(
                    "ecs: no AWS credentials found: set access_key_id and secret_access_key under command_executor.ecs.<name>, "
                    "or configure the default chain (environment, ~/.aws, instance role)"
                ) from None
            except ClientError as e:
                if error_code(e) not in CREDENTIAL_ERRORS:
                    raise
                attempt += 1
                if attempt >= self.credential_attempts:
                    raise BackendError(
                        f"ecs: AWS rejected the credentials ({error_code(e)}) {attempt} times while calling {service} {operation}; renew them"
                    ) from None
                delay = self.credential_delay * 2 ** (attempt - 1)
                self._sleep(delay / 2 + random.uniform(0, delay / 2))
                self.rebuild()
            except BotoCoreError as e:
                raise BackendError(f"ecs: {service} {operation} failed: {e}") from None

"""The contract a temporal storage implements: where a remote task's files travel.

A backend that runs a task away from this machine (ECS, Kubernetes) ships the project
to it and its io directory back through a storage: the driver puts the project archive,
the task's container fetches it through a presigned GET URL and sends its output back
through a presigned PUT URL, so the container needs no credentials of its own. Digdag
calls this the temporal storage (``temporal_storage.type: s3``, ``config_storage.in``).

A storage is a class with a ``name`` (the ``type`` of the section that selects it), a
``config_type`` for its keys and the methods below; a plugin registers the class through
``offload_register_storages(register)``. A backend never imports a storage plugin: it asks
the core (:attr:`offload.BackendContext.storages`) for the storage its config names.

Keys are relative: a storage puts them under its own prefix (``s3.prefix``), so two
backends, or two sites, can share a bucket without seeing each other's files.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import IO, Any, ClassVar

import attrs

from offload.executor.errors import BackendError
from offload.executor.models import Health, Problem

#: The ``Content-Type`` a task's container sends with a presigned PUT; a storage that signs
#: headers signs this one.
PUT_CONTENT_TYPE = "application/octet-stream"
#: How long a presigned URL outlives the task's timeout (the output is sent at its end).
URL_MARGIN = 3600


class StorageError(BackendError):
    """A storage could not do what it was asked (bucket missing, credentials refused)."""


class StorageNotFound(StorageError):
    """The key is not in the storage."""


@attrs.frozen
class StoredObject:
    """One object a storage holds: its key (relative to the storage's prefix), size and age."""

    key: str
    size: int
    modified: float


@attrs.frozen
class NoStorageConfig:
    """The config of a storage that takes no keys."""


class Storage(abc.ABC):
    """Base class of every storage.

    Subclasses set ``name`` and ``config_type`` and implement the abstract methods. Errors
    the user can fix (no such bucket, credentials refused, no credentials found) are
    raised as :class:`StorageError` with one line that names the storage and the bucket,
    never a secret; a missing key is :class:`StorageNotFound`.
    """

    name: ClassVar[str]
    config_type: ClassVar[type] = NoStorageConfig
    #: One line telling a user how to get this storage.
    install_hint: ClassVar[str] = ""
    #: The longest a presigned URL may live here (S3 and GCS V4 signatures: 7 days).
    max_url_expiry: ClassVar[int] = 7 * 24 * 3600
    #: Whether :meth:`list` works (``offload gc`` removes leftovers only where it does).
    can_list: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def parse_config(cls, data: Mapping[str, Any], where: str) -> tuple[Any, list[Problem]]:
        """Turn the storage's section (the mapping under ``s3:``) into ``config_type``.

        The default structures ``data`` with the core's strict converter, every problem
        with its key path under ``where``. Override it for Digdag's dashed keys.
        """
        from offload.executor.config import structure_strict

        return structure_strict(cls.config_type, data, where)

    def url_lifetime(self, timeout: float | None) -> int:
        """Seconds a presigned URL for a task with ``timeout`` must live: the timeout plus
        :data:`URL_MARGIN`, at most :attr:`max_url_expiry` (the most without a timeout)."""
        if timeout is None:
            return self.max_url_expiry
        return int(min(self.max_url_expiry, timeout + URL_MARGIN))

    @abc.abstractmethod
    def put(self, key: str, data: bytes | IO[bytes]) -> None:
        """Store ``data`` under ``key``: bytes, or a binary file open for reading, whose bytes
        from its current position to its end are stored."""

    def put_file(self, key: str, path: str) -> None:
        """Store the file at ``path`` under ``key``."""
        with open(path, "rb") as f:
            self.put(key, f)

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`StorageNotFound` when the bucket is there and the
        key is not, a plain :class:`StorageError` when the bucket is missing (a caller must
        never take a missing bucket for a task that sent nothing back)."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether something is stored under ``key``."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a key that is not there is not an error."""

    @abc.abstractmethod
    def presign_get(self, key: str, expires: int) -> str:
        """A URL that lets anyone holding it GET ``key`` for ``expires`` seconds, no credentials needed."""

    @abc.abstractmethod
    def presign_put(self, key: str, expires: int) -> str:
        """A URL that lets anyone holding it PUT ``key`` (with ``Content-Type:``
        :data:`PUT_CONTENT_TYPE`) for ``expires`` seconds."""

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """Where ``key`` is, as its service names it (``s3://bucket/prefix/key``): for messages,
        and for services that read a location themselves (ECS environment files)."""

    def list(self, prefix: str = "") -> list[StoredObject]:
        """Every object whose key starts with ``prefix``; only when :attr:`can_list`."""
        raise NotImplementedError(f"the {self.name} storage cannot list its objects")

    def check(self) -> Health:
        """Whether the storage is reachable with its credentials, with what was found."""
        return Health(ok=True, summary=f"{self.name}: ready")

    def close(self) -> None:  # noqa: B027 - optional hook for subclasses
        """Release clients and connections."""


@attrs.frozen
class StorageConfig:
    """A parsed storage section: which storage (``type``), its parsed keys, and where it was written."""

    type: str
    config: Any = attrs.field(repr=False)
    where: str

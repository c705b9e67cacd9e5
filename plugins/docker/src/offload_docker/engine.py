"""Which Docker Engine a task talks to, the SDK clients for them, and engine errors
turned into one clear message.

Digdag's ``docker:`` key named the ``docker`` command to run. With the SDK it selects
the engine instead: a command name or path (``docker``, ``/usr/local/bin/docker``)
means the default engine (``command_executor.docker.host``, else ``$DOCKER_HOST``,
else the local socket); a ``unix://``, ``tcp://`` or ``ssh://`` URL is the engine's
address. A ``tcp://`` or ``ssh://`` engine is *remote*: it cannot see the driver's
files, so the project is copied in and the io directory out with the archive API.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
import requests.exceptions

from offload import BackendError

SCHEMES = ("unix://", "tcp://", "ssh://", "http://", "https://", "npipe://")
REMOTE_SCHEMES = ("tcp://", "ssh://", "http://", "https://")
LOCAL_SOCKET = "unix:///var/run/docker.sock"


def describe_engine_value(value: str) -> tuple[str | None, str | None]:
    """The engine address a ``docker:`` value names (``None``: the default engine),
    and a problem when the value is neither a command nor a supported URL."""
    text = value.strip()
    if not text:
        return None, "must not be empty (a docker command, or an engine URL such as unix:///var/run/docker.sock)"
    if "://" in text:
        if text.startswith(SCHEMES):
            return text, None
        scheme = text.split("://", 1)[0]
        return None, f"unsupported engine URL scheme {scheme!r} (use unix://, tcp:// or ssh://)"
    return None, None


def resolve(address: str | None, default_host: str) -> str:
    """The full engine address: the task's, else the system config's, else the environment's."""
    return address or default_host or os.environ.get("DOCKER_HOST", "") or LOCAL_SOCKET


def is_remote(address: str) -> bool:
    """True when the engine may not share this machine's file system."""
    return address.startswith(REMOTE_SCHEMES)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the engine could not be reached at all (not that it refused)."""
    if isinstance(exc, docker.errors.APIError):
        return False
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    return isinstance(exc, docker.errors.DockerException)


_CAUSES = {
    "FileNotFoundError": "no engine socket there",
    "ConnectionRefusedError": "connection refused",
    "PermissionError": "permission denied on the engine socket",
}


def short_cause(exc: BaseException) -> str:
    """The useful end of an SDK error (``No such file or directory``, ``Connection refused``)."""
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    text = str(exc)
    for marker, meaning in _CAUSES.items():
        if marker in text:
            return meaning
    return text.split("Error while fetching server API version: ", 1)[-1]


def not_answering(address: str, exc: BaseException, task_id: str | None = None) -> BackendError:
    who = f"task {task_id}: " if task_id else ""
    return BackendError(
        f"{who}the Docker Engine at {address} does not answer ({short_cause(exc)}); "
        "start it (scripts/setup_docker.sh does) or set docker: to an engine that runs"
    )


@contextmanager
def engine_errors(address: str, task_id: str | None, doing: str) -> Iterator[None]:
    """Turn SDK errors into one :class:`BackendError` naming the task and what failed."""
    try:
        yield
    except BackendError:
        raise
    except Exception as e:
        if unreachable(e):
            raise not_answering(address, e, task_id) from None
        if isinstance(e, docker.errors.DockerException):
            who = f"task {task_id}: " if task_id else ""
            raise BackendError(f"{who}{doing} failed: {short_cause(e)}") from None
        raise


class Engines:
    """SDK clients by engine address, made on first use and shared by threads."""

    def __init__(self, default_host: str = "") -> None:
        self.default_host = default_host
        self._clients: dict[str, docker.DockerClient] = {}
        self._lock = threading.Lock()

    def address(self, address: str | None) -> str:
        return resolve(address, self.default_host)

    def client(self, address: str | None, task_id: str | None = None) -> docker.DockerClient:
        """The client for ``address`` (the default engine when ``None``)."""
        full = self.address(address)
        with self._lock:
            client = self._clients.get(full)
            if client is None:
                with engine_errors(full, task_id, "connecting to the engine"):
                    if full.startswith("ssh://"):
                        client = docker.DockerClient(base_url=full, use_ssh_client=True)
                    elif full == os.environ.get("DOCKER_HOST"):
                        client = docker.from_env()
                    else:
                        client = docker.DockerClient(base_url=full)
                self._clients[full] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from offload import BackendError

if TYPE_CHECKING:  # the SDK is imported by the functions that talk to an engine
    import socket

    import docker

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


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` means the engine took the connection but did not answer in time."""
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    if isinstance(exc, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return True
    if isinstance(exc, docker.errors.DockerException) and not isinstance(exc, docker.errors.APIError):
        return "timed out" in str(exc)  # the SDK wraps a timeout while it asks the API version
    return False


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the engine could not be reached at all (not that it refused)."""
    import docker.errors
    import requests.exceptions
    import urllib3.exceptions

    if isinstance(exc, docker.errors.APIError):
        return False
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    if isinstance(exc, (urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError)):
        return True
    return isinstance(exc, docker.errors.DockerException)


_CAUSES = {
    "FileNotFoundError": "no engine socket there",
    "ConnectionRefusedError": "connection refused",
    "PermissionError": "permission denied on the engine socket",
}


def short_cause(exc: BaseException) -> str:
    """The useful end of an SDK error (``No such file or directory``, ``Connection refused``)."""
    import docker.errors

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


def too_slow(address: str, timeout: float | None, doing: str, task_id: str | None = None) -> BackendError:
    who = f"task {task_id}: " if task_id else ""
    within = f" within {timeout:g} s" if timeout else ""
    return BackendError(
        f"{who}the Docker Engine at {address} did not answer{within} ({doing}); it accepts connections "
        "but does not reply: it may be hung or overloaded (command_executor.docker.api_timeout sets the limit)"
    )


@contextmanager
def engine_errors(address: str, task_id: str | None, doing: str, timeout: float | None = None) -> Iterator[None]:
    """Turn SDK errors into one :class:`BackendError` naming the task and what failed."""
    import docker.errors

    try:
        yield
    except BackendError:
        raise
    except Exception as e:
        if timed_out(e):
            raise too_slow(address, timeout, doing, task_id) from None
        if unreachable(e):
            raise not_answering(address, e, task_id) from None
        if isinstance(e, docker.errors.DockerException):
            who = f"task {task_id}: " if task_id else ""
            raise BackendError(f"{who}{doing} failed: {short_cause(e)}") from None
        raise


class Engines:
    """SDK clients by engine address, made on first use and shared by threads.

    ``timeout`` is the clients' read timeout (``None``: the SDK's 60 s). The backend
    keeps a second set with a short one for the calls of the poll loop and of cancel,
    so that an engine that accepts connections but never replies costs seconds, not a
    minute per call; once a call to an engine has timed out, further calls to it
    through :meth:`errors` fail at once for ``timeout`` seconds instead of waiting again
    (Ctrl-C with many tasks on a hung engine then takes one timeout, not one per task).
    """

    def __init__(self, default_host: str = "", timeout: float | None = None) -> None:
        self.default_host = default_host
        self.timeout = timeout
        self._clients: dict[str, docker.DockerClient] = {}
        self._lock = threading.Lock()
        self._making: dict[str, threading.Lock] = {}
        self._hung_until: dict[str, float] = {}

    def address(self, address: str | None) -> str:
        return resolve(address, self.default_host)

    @contextmanager
    def errors(self, address: str, task_id: str | None, doing: str) -> Iterator[None]:
        """:func:`engine_errors` for this set's timeout, failing fast on an engine that just hung."""
        if time.monotonic() < self._hung_until.get(address, 0.0):
            raise too_slow(address, self.timeout, f"{doing}: not tried, as it did not answer the call before", task_id)
        try:
            with engine_errors(address, task_id, doing, self.timeout):
                yield
        except BackendError as e:
            if self.timeout and " did not answer" in str(e):
                self._hung_until[address] = time.monotonic() + self.timeout
            raise

    def client(self, address: str | None, task_id: str | None = None) -> docker.DockerClient:
        """The client for ``address`` (the default engine when ``None``)."""
        with self._lock:  # the common case: the full address, a client made already
            client = self._clients.get(address) if address else None
        if client is not None:
            return client
        full = self.address(address)
        with self._lock:
            client = self._clients.get(full)
            making = self._making.setdefault(full, threading.Lock())
        if client is not None:
            return client
        with making:  # one client made per engine, even when many threads ask at once
            with self._lock:
                client = self._clients.get(full)
            return client if client is not None else self._make(full, task_id)

    def _make(self, full: str, task_id: str | None) -> docker.DockerClient:
        import docker

        # The SDK's default pool size (10): over a unix socket (and ssh) it keeps a pool per
        # URL, so the many logs followed at once never share one, and a larger size only
        # costs each new pool its empty slots (272 of them doubled the CPU of a call).
        kwargs: dict[str, Any] = {} if self.timeout is None else {"timeout": self.timeout}
        with self.errors(full, task_id, "connecting to the engine"):
            if full.startswith("ssh://"):
                client = docker.DockerClient(base_url=full, use_ssh_client=True, **kwargs)
            elif full == os.environ.get("DOCKER_HOST"):
                client = docker.from_env(**kwargs)
            else:
                client = docker.DockerClient(base_url=full, **kwargs)
        if full.startswith("unix://"):
            # No proxy can stand between this machine and its socket, so requests need not
            # scan the environment for one before each call (a quarter of a call's CPU).
            client.api.trust_env = False
        with self._lock:
            existing = self._clients.setdefault(full, client)
        if existing is not client:
            client.close()
        return existing

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def socket_of(response: Any) -> socket.socket | None:
    """The socket under a streaming ``requests`` response, to shut it down from another
    thread (closing the response from there waits for the read in progress).

    urllib3 keeps the connection of an unread response as ``_connection``; the SDK's own
    ``CancellableStream.close`` digs the socket out the same way. ``None`` when it is not
    there: then the reading thread ends when the engine next sends or closes.
    """
    import socket

    connection = getattr(getattr(response, "raw", None), "_connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def shut_down(response: Any) -> None:
    """End the read in progress on ``response``, from any thread."""
    import socket

    sock = socket_of(response)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already

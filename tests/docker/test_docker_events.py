"""A container's stop as the engine's event stream reports it, and the reconcile that
covers a stream that drops or goes silent.

Here no log is followed (as for the containers beyond ``MAX_FOLLOWERS``): the end of a
followed log would tell the stop by itself. The engine is reached through a proxy on a
unix socket that can cut, refuse or silence the ``/events`` connections.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

import offload
from offload import Handle, TaskState
from offload.testing import make_request, wait_for
from offload_docker import watching
from offload_docker.backend import DockerBackend

Make = Callable[..., offload.Executor]
ENGINE_SOCKET = "/var/run/docker.sock"


class EngineProxy:
    """Forwards a unix socket to the engine's; knows which connections carry ``/events``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(64)
        self.lock = threading.Lock()
        self.events: list[tuple[socket.socket, socket.socket]] = []
        self.events_opened = 0
        self.refuse_events = False
        self.silent = threading.Event()
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(ENGINE_SOCKET)
            pair = (client, upstream)
            threading.Thread(target=self._requests, args=(pair,), daemon=True).start()
            threading.Thread(target=self._replies, args=(pair,), daemon=True).start()

    def _requests(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        try:
            while data := client.recv(65536):
                if data.startswith(b"GET ") and b"/events?" in data.split(b"\r\n", 1)[0]:
                    with self.lock:
                        self.events_opened += 1
                        refuse = self.refuse_events
                        if not refuse:
                            self.events.append(pair)
                    if refuse:
                        break
                upstream.sendall(data)
        except OSError:
            pass
        _close(pair)

    def _replies(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, upstream = pair
        try:
            while data := upstream.recv(65536):
                with self.lock:
                    is_events = pair in self.events
                if is_events and self.silent.is_set():
                    continue  # the engine's events go nowhere, the connection stays open
                client.sendall(data)
        except OSError:
            pass
        _close(pair)

    def cut_events(self) -> None:
        with self.lock:
            pairs, self.events = self.events, []
        for pair in pairs:
            _close(pair)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.cut_events()


def _close(pair: tuple[socket.socket, socket.socket]) -> None:
    for s in pair:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@pytest.fixture
def proxy(engine: docker.DockerClient) -> Iterator[EngineProxy]:
    with tempfile.TemporaryDirectory(prefix="ofl-") as tmp:  # short: a unix socket path has a limit
        found = EngineProxy(f"{tmp}/engine.sock")
        yield found
        found.close()


@pytest.fixture
def no_followed_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "MAX_FOLLOWERS", 0)


def wait_running(executor: offload.Executor, handle: Handle, logs: list[str]) -> Handle:
    """Poll until the container runs, keeping its log lines."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (status,) = executor.poll([handle])
        handle = status.handle or handle
        logs += status.logs
        assert not status.state.finished, status
        if status.state is TaskState.RUNNING and handle.state.get("phase") == "started":
            return handle
        time.sleep(0.05)
    pytest.fail("the container never ran")


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def killed_from_outside(executor: offload.Executor, handle: Handle, engine: docker.DockerClient, before: Callable[[], None]) -> None:
    """Run ``before``, kill the container with the engine's own client, and check that the
    task is seen failed, with the line it printed before exactly once."""
    logs: list[str] = []
    handle = wait_running(executor, handle, logs)
    backend = executor.backends.get("docker")
    assert isinstance(backend, DockerBackend)
    events = backend.watch.events(str(handle.state["engine"]))
    wait_until(lambda: events.connected_at is not None, "the event stream never connected")
    (status,) = executor.poll([handle])  # makes the reconcile due after the connection
    logs += status.logs
    assert not events.reconcile_due(time.monotonic()), "from now on only the stream, or a reconcile the test asks for, can tell"
    before()
    engine.api.kill(handle.state["container"])
    result, rest = wait_for(executor, handle, limit=60)
    assert (result.state, result.exit_code) == (TaskState.FAILED, 137)
    assert logs + rest == ["begun"]


def test_a_container_killed_from_outside_is_seen_failed_through_the_event_stream(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, no_followed_logs: None
) -> None:
    executor = docker_executor({"reconcile_interval": 3600})  # no reconcile after the first: the stream alone
    handle = executor.submit(make_request(project, "echo begun; sleep 300", {"docker": {"image": image}}), backend="docker")
    killed_from_outside(executor, handle, engine, lambda: None)


def test_an_event_stream_that_drops_and_cannot_reconnect_is_covered_by_the_reconcile(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, proxy: EngineProxy, no_followed_logs: None
) -> None:
    executor = docker_executor({"host": f"unix://{proxy.path}", "reconcile_interval": 3600})
    handle = executor.submit(make_request(project, "echo begun; sleep 300", {"docker": {"image": image}}), backend="docker")

    def drop_the_stream() -> None:
        wait_until(lambda: proxy.events_opened >= 1, "the backend never opened the event stream")
        proxy.refuse_events = True
        proxy.cut_events()

    killed_from_outside(executor, handle, engine, drop_the_stream)
    assert proxy.events_opened >= 2, "the backend tried to connect the stream again"


def test_an_event_stream_that_goes_silent_is_covered_by_the_periodic_reconcile(
    docker_executor: Make, project: Path, image: str, engine: docker.DockerClient, proxy: EngineProxy, no_followed_logs: None
) -> None:
    executor = docker_executor({"host": f"unix://{proxy.path}", "reconcile_interval": 1})
    handle = executor.submit(make_request(project, "echo begun; sleep 300", {"docker": {"image": image}}), backend="docker")

    def silence_the_stream() -> None:
        wait_until(lambda: proxy.events_opened >= 1, "the backend never opened the event stream")
        proxy.silent.set()

    killed_from_outside(executor, handle, engine, silence_the_stream)
    assert proxy.events_opened == 1, "the stream looked connected all along"

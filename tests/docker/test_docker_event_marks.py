"""The marks the event stream leaves for the poll, against a scripted engine (no Docker):
which container may have stopped, after which events, reconciles and reconnections."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from offload_docker.events import EngineEvents


class Reply:
    """A streaming reply whose body is the lines put in ``lines`` (``None`` ends it)."""

    def __init__(self, lines: queue.Queue[bytes | None]) -> None:
        self.lines = lines
        self.raw = self

    chunked = False

    def stream(self, amount: int, decode_content: bool = False) -> Iterator[bytes]:
        while (line := self.lines.get()) is not None:
            yield line

    def raise_for_status(self) -> None:
        pass

    def close(self) -> None:
        pass


class ScriptedEngine:
    """Stands for the SDK's low-level client: each ``GET /events`` is a new connection."""

    base_url = "http+docker://localhost"
    api_version = "1.41"

    def __init__(self) -> None:
        self.connections: list[queue.Queue[bytes | None]] = []
        self.connected = threading.Condition()

    def get(self, url: str, **kwargs: Any) -> Reply:
        assert url.endswith("/events")
        filters = json.loads(kwargs["params"]["filters"])
        assert filters == {"type": ["container"], "event": ["start", "die", "destroy"], "label": ["offload.managed=true"]}
        assert float(kwargs["params"]["since"]) < time.time(), "each connection asks for the last seconds again"
        lines: queue.Queue[bytes | None] = queue.Queue()
        with self.connected:
            self.connections.append(lines)
            self.connected.notify_all()
        return Reply(lines)

    def send(self, action: str, container_id: str) -> None:
        self.connections[-1].put(json.dumps({"Type": "container", "Action": action, "id": container_id}).encode() + b"\n")

    def drop(self) -> None:
        self.connections[-1].put(None)

    def wait_connections(self, n: int) -> None:
        with self.connected:
            assert self.connected.wait_for(lambda: len(self.connections) >= n, 10)


@pytest.fixture
def engine() -> ScriptedEngine:  # shadows the real engine: these tests need none
    return ScriptedEngine()


@pytest.fixture
def news() -> threading.Event:
    return threading.Event()


@pytest.fixture
def events(engine: ScriptedEngine, news: threading.Event) -> Iterator[EngineEvents]:
    found = EngineEvents(engine, timeout=1, interval=3600, on_news=news.set)
    engine.wait_connections(1)
    wait_until(lambda: found.connected_at is not None)
    yield found
    found.close()
    engine.drop()


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_stop_of_a_watched_container_marks_it_and_wakes_the_poll_and_a_start_clears_it(
    events: EngineEvents, engine: ScriptedEngine, news: threading.Event
) -> None:
    events.watch("a", time.monotonic())
    events.reconcile(lambda: {"a"})
    news.clear()
    engine.send("die", "a")
    assert news.wait(10)
    assert events.stopped_since("a") is not None
    engine.send("start", "a")  # restarted: the engine never took a stop back otherwise
    wait_until(lambda: events.stopped_since("a") is None)


def test_a_stop_that_came_before_the_container_was_watched_counts_unless_a_later_look_saw_it_run(events: EngineEvents, engine: ScriptedEngine) -> None:
    before = time.monotonic()
    engine.send("die", "b")
    engine.send("destroy", "c")
    engine.send("die", "sentinel")
    wait_until(lambda: events.stopped_since("sentinel") is not None)
    events.watch("b", before)  # looked at it before the stop came: the stop stands
    assert events.stopped_since("b") is not None
    events.watch("c", time.monotonic())  # a look after the stop saw it run: the stop was an older one
    assert events.stopped_since("c") is None


def test_a_reconcile_marks_the_watched_containers_not_running_and_an_unanswered_one_marks_nothing(events: EngineEvents) -> None:
    now = time.monotonic()
    for container_id in ("run", "gone", "forgotten"):
        events.watch(container_id, now)
    events.forget("forgotten")
    assert events.reconcile_due(time.monotonic()), "the first reconcile after a connection is due"
    events.reconcile(lambda: None)
    assert events.stopped_since("gone") is None
    assert not events.reconcile_due(time.monotonic()), "an engine that did not answer is asked again a second later"
    events.reconcile(lambda: {"run"})
    assert events.stopped_since("run") is None
    assert events.stopped_since("gone") is not None
    assert events.stopped_since("forgotten") is None
    assert not events.reconcile_due(time.monotonic()), "then not before reconcile_interval"
    events.watch("gone", time.monotonic())  # the poll looked and it runs after all
    assert events.stopped_since("gone") is None


def test_after_a_reconnection_a_reconcile_is_due_and_a_container_seen_before_it_but_watched_after_it_is_marked(
    events: EngineEvents, engine: ScriptedEngine, news: threading.Event
) -> None:
    events.watch("early", time.monotonic())
    events.reconcile(lambda: {"early"})
    seen_before_reconnection = time.monotonic()
    news.clear()
    engine.drop()
    engine.wait_connections(2)
    assert news.wait(10), "a new connection wakes the poll: its reconcile is due"
    assert events.reconcile_due(time.monotonic())
    events.reconcile(lambda: {"early", "late"})
    events.watch("late", seen_before_reconnection)  # it may have stopped while the stream was down, unseen
    assert events.stopped_since("late") is not None
    events.watch("fresh", time.monotonic())
    assert events.stopped_since("fresh") is None

"""Which watched containers may have stopped, from the engine's event stream.

One ``GET /events`` per engine, filtered to offload's containers (label
``offload.managed=true``, actions ``start``, ``die`` and ``destroy``), is read by a daemon
thread: a ``die`` or ``destroy`` marks the container as possibly stopped and wakes the
poll loop, which then asks the engine about that container alone, so a running task
costs no call per poll however many there are.

What the stream can miss is found by a *reconcile*: one list of the engine's running
offload containers, after every (re)connection and every ``reconcile_interval`` seconds
(every second while the stream is down); a watched container missing from it is marked
too. The engine sends the reply's headers before it subscribes, so each connection asks
for the events of the last seconds again (``since``): a repeated event only costs a look.
A mark is a reason to look, never a verdict: the poll believes the engine's inspect.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from offload_docker.container import MANAGED
from offload_docker.engine import shut_down, socket_of
from offload_docker.follow import body

ACTIONS = ("start", "die", "destroy")
#: Seconds between reconciles while the stream is down (it is reconnected meanwhile).
DOWN_RECONCILE = 1.0
#: How far back each connection asks for events again (the engine replays from its buffer).
REPLAY = 5.0
#: How long a stop of a container nobody watches yet is remembered.
REMEMBER = 300.0
RETRY_FIRST, RETRY_MAX = 0.1, 2.0


class EngineEvents:
    """The event stream of one engine, and the marks it leaves for the poll.

    ``api`` is an SDK low-level client whose reads have a time limit (``timeout``, for
    connecting and for the reply's headers; the stream itself may stay quiet for hours).
    """

    def __init__(self, api: Any, timeout: float | None, interval: float, on_news: Callable[[], None]) -> None:
        self.api = api
        self.timeout = timeout
        self.interval = interval
        self.on_news = on_news
        self._lock = threading.Lock()
        self._watched: set[str] = set()
        #: Containers whose last event was a stop, with ``time.monotonic()`` of it.
        self._stopped: dict[str, float] = {}
        #: Watched containers a reconcile did not see running, with ``time.monotonic()`` of it.
        self._missing: dict[str, float] = {}
        #: ``time.monotonic()`` when the current connection began; ``None`` while down.
        self.connected_at: float | None = None
        self._connections = 0
        #: The connection the last reconcile began in, and the last one it finished for.
        self._snapshot_connection = 0
        self._reconciled_connection = 0
        self._reconciled_at = float("-inf")
        self._failed_at = float("-inf")
        self._response: Any = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="offload-docker-events", daemon=True)
        self._thread.start()

    # -- the poll's side -------------------------------------------------------------

    def watch(self, container_id: str, seen_at: float) -> None:
        """The poll saw ``container_id`` running at ``seen_at`` (``time.monotonic()`` before
        it asked): marks older than that look are dropped, and from now on a stop of it is
        marked. A stop between that look and the current connection could have been
        missed when this connection's reconcile was taken without it: then it is marked."""
        with self._lock:
            self._watched.add(container_id)
            for marks in (self._stopped, self._missing):
                if marks.get(container_id, float("inf")) <= seen_at:
                    del marks[container_id]
            if self.connected_at is not None and seen_at < self.connected_at and self._snapshot_connection >= self._connections:
                self._missing[container_id] = time.monotonic()

    def watching(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._watched

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._watched.discard(container_id)
            self._stopped.pop(container_id, None)
            self._missing.pop(container_id, None)

    def stopped_since(self, container_id: str) -> float | None:
        """Since when (``time.monotonic()``) ``container_id`` may have stopped; ``None``: no sign of it."""
        with self._lock:
            marks = [t for t in (self._stopped.get(container_id), self._missing.get(container_id)) if t is not None]
        return min(marks) if marks else None

    def reconcile_due(self, now: float) -> bool:
        with self._lock:
            if not self._watched or now < self._failed_at + DOWN_RECONCILE:
                return False
            if self._reconciled_connection < self._connections:
                return True
            every = self.interval if self.connected_at is not None else min(self.interval, DOWN_RECONCILE)
            return now >= self._reconciled_at + every

    def reconcile(self, running: Callable[[], set[str] | None]) -> None:
        """Mark the watched containers that ``running()`` (the engine's list of running
        offload containers, asked now) leaves out. ``None`` (the engine did not answer)
        marks nothing: the list is asked again a second later, and meanwhile the ends of
        followed logs still tell."""
        with self._lock:
            watched, connection = set(self._watched), self._connections
            self._snapshot_connection = connection
        found = running()  # outside the lock: events keep coming meanwhile
        with self._lock:
            now = time.monotonic()
            if found is None:
                self._failed_at = now
                return
            for container_id in (watched - found) & self._watched:  # not those forgotten meanwhile
                self._missing.setdefault(container_id, now)
            self._reconciled_connection = max(self._reconciled_connection, connection)
            self._reconciled_at = now

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            response = self._response
        if response is not None:
            shut_down(response)

    # -- the thread's side -----------------------------------------------------------

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._closed.is_set():
            began = time.monotonic()
            try:
                self._stream()
            except Exception:  # noqa: BLE001 - reconnected below; the reconcile covers the gap
                pass
            with self._lock:
                self.connected_at, self._response = None, None
            if time.monotonic() - began > RETRY_MAX:
                delay = RETRY_FIRST
            if self._closed.wait(delay):
                return
            delay = min(RETRY_MAX, delay * 2)

    def _stream(self) -> None:
        filters = {"type": ["container"], "event": list(ACTIONS), "label": [f"{MANAGED}=true"]}
        params = {"filters": json.dumps(filters), "since": f"{time.time() - REPLAY:.9f}"}
        url = f"{self.api.base_url}/v{self.api.api_version}/events"
        response = self.api.get(url, params=params, stream=True, timeout=(self.timeout, self.timeout))
        try:
            response.raise_for_status()
            sock = socket_of(response)
            if sock is not None:
                sock.settimeout(None)  # the headers came in time; events may not come for hours
            with self._lock:
                self._response = response
                self.connected_at = time.monotonic()
                self._connections += 1
                watched = bool(self._watched)
            if self._closed.is_set():
                return
            if watched:
                self.on_news()  # a reconcile is due
            pending = b""
            for chunk in body(response):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        self._event(json.loads(line))
        finally:
            response.close()

    def _event(self, event: dict[str, Any]) -> None:
        action = event.get("Action") or event.get("status")
        container_id = event.get("id") or (event.get("Actor") or {}).get("ID")
        if not isinstance(container_id, str):
            return
        now = time.monotonic()
        with self._lock:
            if action == "start":
                self._stopped.pop(container_id, None)
                return
            self._stopped[container_id] = now
            watched = container_id in self._watched
            if len(self._stopped) > 1024:  # stops of containers nobody came to watch
                self._stopped = {k: t for k, t in self._stopped.items() if k in self._watched or now - t < REMEMBER}
        if watched:
            self.on_news()

"""Watching started containers: their logs, their stop, their deadlines.

A :class:`ContainerWatch` belongs to one backend instance. Whether a container may have
stopped comes from the engine's event stream (one per engine, see
:mod:`offload_docker.events`); its log comes from a
:class:`~offload_docker.follow.Follower`, whose reply the engine ends once the container
has stopped and its log was sent to the end: a task finishes only then. So a running
task costs no call to the engine per poll: the engine is asked about a container when
it is first seen (unless the start already did), when its log has ended, and when the
events say it stopped while nothing follows its log (more than :data:`MAX_FOLLOWERS`
containers, or a logging driver that keeps no log). Cancel deadlines and timeouts are
enforced from the handle. News (lines, the end of a log, a stop) wakes the poll loop's
``wait``. Every call it makes to the engine goes through the short-timeout clients (``quick``).
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from offload import BackendError, Handle, Status, TaskState
from offload_docker import outcome, resume, stopping
from offload_docker.config import DockerSystemConfig
from offload_docker.container import MANAGED
from offload_docker.engine import Engines, is_remote
from offload_docker.events import EngineEvents
from offload_docker.follow import Follower
from offload_docker.logs import LogCursor
from offload_docker.starting import Seen
from offload_docker.stopping import RUNNING_STATES

#: Logs followed at once (a connection each); beyond, a running container's log comes once it stops.
MAX_FOLLOWERS = 256
#: How soon ``wait`` returns when a container's log ended before the engine said it stopped.
RECHECK = 0.05
#: Seconds between two reads of a running container's cancel marker, when no cancel came from here.
CANCEL_LOOK = 1.0
#: Seconds a followed log may stay silent after the container stopped before the follow
#: request is made again (the engine should have ended the reply).
STALLED = 5.0


class ContainerWatch:
    """The started containers one backend instance polls, and the clients it polls them with."""

    def __init__(self, config: DockerSystemConfig, engines: Engines) -> None:
        self.config = config
        self.engines = engines
        self.quick = Engines(config.host, timeout=config.api_timeout)
        self._followers: dict[str, Follower] = {}
        self._events: dict[str, EngineEvents] = {}
        self._finished: dict[str, dict[str, Any]] = {}
        self._cancelled: set[str] = set()
        self._next_look: dict[str, float] = {}
        self.activity = threading.Event()
        self._recheck = False

    def begin(self) -> None:
        """Called at the start of each poll: news from now on wakes the next ``wait``; the
        event streams' reconciles that are due are made."""
        self.activity.clear()
        self._recheck = False
        now = time.monotonic()
        for address, events in list(self._events.items()):
            if events.reconcile_due(now):
                events.reconcile(functools.partial(self._running, address))

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout``, waking as soon as a followed log has news (lines, its
        end), the engine reports a stop, or a start moves on; never a call to the engine,
        so never stuck on one."""
        if self._recheck:
            timeout = min(timeout, RECHECK)
        if timeout > 0:
            self.activity.wait(timeout)

    def close(self) -> None:
        for container_id in list(self._followers):
            self.unfollow(container_id)
        for events in self._events.values():
            events.close()
        self._events.clear()
        self.quick.close()

    def events(self, address: str, task_id: str | None = None) -> EngineEvents:
        """The event stream of the engine at ``address``, connected on first use."""
        events = self._events.get(address)
        if events is None:
            api = self.quick.client(address, task_id).api
            events = self._events[address] = EngineEvents(api, self.config.api_timeout, self.config.reconcile_interval, self.activity.set)
        return events

    def _running(self, address: str) -> set[str] | None:
        """The ids of the running offload containers on the engine at ``address`` (for the
        reconcile); ``None`` when the engine does not answer."""
        try:
            with self.quick.errors(address, None, "listing the running containers"):
                found = self.quick.client(address).api.containers(filters={"label": f"{MANAGED}=true"})
        except BackendError:
            return None
        return {str(c["Id"]) for c in found}

    def poll(self, handle: Handle, logs: list[str], changed: bool, seen: Seen | None = None) -> Status:
        """The status of a started container; ``logs`` (from its start) go first; ``seen``:
        what its start in this process saw of it (else the engine is asked once)."""
        container_id = str(handle.state["container"])
        cursor = LogCursor.from_state(handle.state)
        events = self.events(str(handle.state["engine"]), handle.task_id)
        follower = self._followers.get(container_id)
        if follower is not None and (follower.delivered != cursor or follower.failed is not None):
            self.unfollow(container_id)
            follower = None
        if follower is None:
            full = len(self._followers) >= MAX_FOLLOWERS
            if full and events.watching(container_id) and events.stopped_since(container_id) is None:
                return self._running_status(handle, logs, changed)
            if seen is None:
                at = time.monotonic()
                info = self.inspect(handle)
                seen = None if info is None else Seen.of(info, at)
            if seen is None:
                return self._gone(handle, logs)
            if seen.status == "created":
                return self._created(handle, logs, changed)
            handle, changed = self._learn(handle, seen, changed)
            if seen.status in RUNNING_STATES:
                events.watch(container_id, seen.at)
                if full:
                    return self._running_status(handle, logs, changed)
            follower = self._follow(handle, cursor)
        new, after, drained = follower.take()
        if after is not None and after != cursor:
            handle, changed = handle.with_state(**after.to_state()), True
        logs = [*logs, *new]
        stopped = events.stopped_since(container_id)
        if not drained and (stopped is None or time.monotonic() - max(stopped, follower.last_read) < STALLED):
            return self._running_status(handle, logs, changed)
        if drained and follower.unreadable is not None and stopped is None:  # no log to end: the events tell
            return self._running_status(handle, logs, changed)
        info, at = follower.final, follower.final_at
        if info is None:
            at = time.monotonic()
            info = self.inspect(handle)
        if info is None:
            self.unfollow(container_id)
            return self._gone(handle, logs)
        state = info["State"]
        if state.get("Status") in RUNNING_STATES:  # the log ended a moment before the engine saw the exit
            events.watch(container_id, at)
            if drained and follower.unreadable is None:
                self.unfollow(container_id)
                self._recheck = True
            return self._running_status(handle, logs, changed)
        if not drained or (follower.final is None and follower.unreadable is None):
            # Stopped, but this follower did not read its log to the end as a stopped
            # container's (the engine never ended the reply, or the follower could not ask
            # the engine): a new one reads the rest from the cursor, and settles it.
            self.unfollow(container_id)
            self._recheck = True
            return self._running_status(handle, logs, changed)
        self.unfollow(container_id)
        if state.get("Status") == "created":
            return self._created(handle, logs, changed)
        self._drop(events, container_id)
        self._finished[container_id] = info
        found = outcome.from_container(handle, state)
        update = handle if changed else None
        return Status(found.state, exit_code=found.exit_code, reason=found.error, logs=logs, handle=update)

    def _running_status(self, handle: Handle, logs: list[str], changed: bool) -> Status:
        """RUNNING, after enforcing the timeout and a cancel's deadline. The cancel marker is
        read at every poll once this process cancelled the task, else at most every
        :data:`CANCEL_LOOK` seconds (a cancel from another process holding the handle)."""
        container_id = str(handle.state["container"])
        now = time.monotonic()
        look = container_id in self._cancelled or now >= self._next_look.get(container_id, 0.0)
        if look:
            self._next_look[container_id] = now + CANCEL_LOOK
        stopping.enforce(self.api(handle), self.errors(handle), handle, self.config.stop_grace, look_for_cancel=look)
        return Status(TaskState.RUNNING, logs=logs, handle=handle if changed else None)

    def cancelled(self, container_id: str) -> None:
        """This process cancelled ``container_id``: its deadline is looked at every poll."""
        self._cancelled.add(container_id)

    def finished_info(self, container_id: str) -> dict[str, Any] | None:
        """What the engine said when the poll saw ``container_id`` finish (taken once), so
        ``collect`` need not ask again."""
        return self._finished.pop(container_id, None)

    def _learn(self, handle: Handle, seen: Seen, changed: bool) -> tuple[Handle, bool]:
        """Keep in the handle what timeouts need, so no later poll has to ask the engine."""
        learnt: dict[str, Any] = {}
        if seen.started_at is not None and handle.state.get("started_at") != seen.started_at:
            learnt["started_at"] = seen.started_at
        if seen.stop_signal != "SIGTERM" and handle.state.get("stop_signal") != seen.stop_signal:
            learnt["stop_signal"] = seen.stop_signal
        return (handle.with_state(**learnt), True) if learnt else (handle, changed)

    def _created(self, handle: Handle, logs: list[str], changed: bool) -> Status:
        """A container created but never started: its driver died in between. Start it."""
        update = handle if changed else None
        if outcome.cancelled(handle):
            found = outcome.from_container(handle, {"Status": "created"})
            return Status(found.state, reason=found.error, logs=logs, handle=update)
        address, container_id = str(handle.state["engine"]), str(handle.state["container"])
        request = resume.kept_request(handle.io_path, str(handle.state.get("submission", "")))
        # The short timeout, as every call of the poll loop; a remote engine gets the
        # project copied in first, which may take long.
        engines = self.engines if is_remote(address) else self.quick
        with engines.errors(address, handle.task_id, "starting the container its driver had created"):
            started = resume.start_created(engines.client(address, handle.task_id).api, container_id, request, is_remote(address))
        if not started:
            reason = (
                f"task {handle.task_id}: container {container_id[:12]} was created but never started, "
                "and the project cannot be copied to the remote engine any more; run the task again"
            )
            return Status(TaskState.LOST, reason=reason, logs=logs, handle=update)
        resume.drop_request(handle.io_path, str(handle.state.get("submission", "")))
        self._recheck = True
        return Status(TaskState.PENDING, logs=logs, handle=update)

    def _follow(self, handle: Handle, cursor: LogCursor) -> Follower:
        container_id = str(handle.state["container"])
        follower = Follower(self.api(handle), container_id, cursor, self.config.api_timeout, self.activity.set, lambda: self.inspect(handle))
        self._followers[container_id] = follower
        follower.start()
        return follower

    def unfollow(self, container_id: str) -> None:
        follower = self._followers.pop(container_id, None)
        if follower is not None:
            follower.close()

    def forget(self, handle: Handle, container_id: str) -> None:
        """Stop following and watching ``container_id`` (its result is being collected)."""
        self.unfollow(container_id)
        self._drop(self._events.get(str(handle.state.get("engine"))), container_id)

    def _drop(self, events: EngineEvents | None, container_id: str) -> None:
        if events is not None:
            events.forget(container_id)
        self._cancelled.discard(container_id)
        self._next_look.pop(container_id, None)

    def _gone(self, handle: Handle, logs: list[str]) -> Status:
        found = outcome.saved(handle)
        if found is not None:
            return Status(found.state, exit_code=found.exit_code, reason=found.error, logs=logs)
        reason = f"task {handle.task_id}: container {str(handle.state['container'])[:12]} no longer exists (removed outside offload?)"
        return Status(TaskState.LOST, reason=reason, logs=logs)

    def api(self, handle: Handle) -> Any:
        return self.quick.client(str(handle.state["engine"]), handle.task_id).api

    def errors(self, handle: Handle) -> stopping.Errors:
        address = str(handle.state["engine"])
        return lambda doing: self.quick.errors(address, handle.task_id, doing)

    def inspect(self, handle: Handle) -> dict[str, Any] | None:
        """The container's details, or ``None`` when it no longer exists."""
        import docker.errors

        api = self.api(handle)
        with self.errors(handle)("inspecting the container"):
            try:
                info: dict[str, Any] = api.inspect_container(str(handle.state["container"]))
            except docker.errors.NotFound:
                return None
        return info

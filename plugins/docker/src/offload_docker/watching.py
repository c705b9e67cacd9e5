"""Watching started containers: their logs, their stop, their deadlines.

A :class:`ContainerWatch` belongs to one backend instance. It keeps a
:class:`~offload_docker.follow.Follower` per container it polls, asks the engine about a
container only when it first sees it and when its log has ended (so a running task costs
no API call per poll), enforces cancel deadlines and timeouts from the handle, and wakes
the poll loop's ``wait`` when a log has news. Every call it makes to the engine goes
through the short-timeout clients (``quick``).
"""

from __future__ import annotations

import threading
from typing import Any

from offload import Handle, Status, TaskState
from offload_docker import outcome, resume, stopping
from offload_docker.config import DockerSystemConfig
from offload_docker.engine import Engines, is_remote
from offload_docker.follow import Follower
from offload_docker.logs import LogCursor
from offload_docker.stopping import RUNNING_STATES

#: Logs followed at once (a connection each); beyond, a running container's log comes once it stops.
MAX_FOLLOWERS = 256
#: How soon ``wait`` returns when a container's log ended before the engine said it stopped.
RECHECK = 0.05


class ContainerWatch:
    """The started containers one backend instance polls, and the clients it polls them with."""

    def __init__(self, config: DockerSystemConfig, engines: Engines) -> None:
        self.config = config
        self.engines = engines
        # Each followed log holds a connection of the quick clients' pool while it runs.
        self.quick = Engines(config.host, timeout=config.api_timeout, pool_size=MAX_FOLLOWERS + 16)
        self._followers: dict[str, Follower] = {}
        self.activity = threading.Event()
        self._recheck = False

    def begin(self) -> None:
        """Called at the start of each poll: news from now on wakes the next ``wait``."""
        self.activity.clear()
        self._recheck = False

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout``, waking as soon as a followed log has news (lines, its
        end) or a preparation moves on; never a call to the engine, so never stuck on one."""
        if self._recheck:
            timeout = min(timeout, RECHECK)
        if timeout > 0:
            self.activity.wait(timeout)

    def close(self) -> None:
        for container_id in list(self._followers):
            self.unfollow(container_id)
        self.quick.close()

    def poll(self, handle: Handle, logs: list[str], changed: bool) -> Status:
        """The status of a started container; ``logs`` (from its preparation) go first."""
        container_id = str(handle.state["container"])
        cursor = LogCursor.from_state(handle.state)
        follower = self._followers.get(container_id)
        if follower is not None and (follower.delivered != cursor or follower.failed is not None):
            self.unfollow(container_id)
            follower = None
        if follower is None:
            info = self.inspect(handle)
            if info is None:
                return self._gone(handle, logs)
            if info["State"].get("Status") == "created":
                return self._created(handle, logs, changed)
            handle, changed = self._learn(handle, info, changed)
            if len(self._followers) >= MAX_FOLLOWERS and info["State"].get("Status") in RUNNING_STATES:
                stopping.enforce(self.api(handle), self.errors(handle), handle, self.config.stop_grace)
                return Status(TaskState.RUNNING, logs=logs, handle=handle if changed else None)
            follower = self._follow(handle, cursor)
        new, after, drained = follower.take()
        if after is not None and after != cursor:
            handle, changed = handle.with_state(**after.to_state()), True
        logs = [*logs, *new]
        update = handle if changed else None
        if not drained:
            stopping.enforce(self.api(handle), self.errors(handle), handle, self.config.stop_grace)
            return Status(TaskState.RUNNING, logs=logs, handle=update)
        info = self.inspect(handle)
        if info is None:
            self.unfollow(container_id)
            return self._gone(handle, logs)
        state = info["State"]
        if state.get("Status") in RUNNING_STATES:  # the log ended a moment before the engine saw the exit
            if follower.unreadable is None:
                self.unfollow(container_id)
                self._recheck = True
            stopping.enforce(self.api(handle), self.errors(handle), handle, self.config.stop_grace)
            return Status(TaskState.RUNNING, logs=logs, handle=update)
        self.unfollow(container_id)
        if state.get("Status") == "created":
            return self._created(handle, logs, changed)
        if follower.unreadable is None:
            late, after = self.read_rest(handle, follower.delivered)
            if after is not None:
                handle, changed = handle.with_state(**after.to_state()), True
                logs, update = [*logs, *late], handle
        found = outcome.from_container(handle, state)
        return Status(found.state, exit_code=found.exit_code, reason=found.error, logs=logs, handle=update)

    def _learn(self, handle: Handle, info: dict[str, Any], changed: bool) -> tuple[Handle, bool]:
        """Keep in the handle what timeouts need, so no later poll has to ask the engine."""
        started = outcome.engine_times(info["State"])["started_at"]
        learnt: dict[str, Any] = {}
        if started is not None and handle.state.get("started_at") != started:
            learnt["started_at"] = started
        signal = stopping.stop_signal(info)
        if signal != "SIGTERM" and handle.state.get("stop_signal") != signal:
            learnt["stop_signal"] = signal
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
        follower = Follower(self.api(handle), container_id, cursor, self.config.api_timeout, self.activity.set)
        self._followers[container_id] = follower
        follower.start()
        return follower

    def read_rest(self, handle: Handle, cursor: LogCursor) -> tuple[list[str], LogCursor | None]:
        """The lines of a stopped container's log after ``cursor`` that its follow reply left out.

        The engine may end a follow reply without the last message when it has no newline
        (moby #43860): once the container has stopped, its log is complete, and one plain
        read from the cursor brings what is missing. Best effort: a failed read adds nothing.
        """
        rest = Follower(self.api(handle), str(handle.state["container"]), cursor, self.config.api_timeout, lambda: None, follow=False)
        rest.read()
        if rest.failed is not None or rest.unreadable is not None:
            return [], None
        lines, after, _ = rest.take()
        return lines, after

    def unfollow(self, container_id: str) -> None:
        follower = self._followers.pop(container_id, None)
        if follower is not None:
            follower.close()

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

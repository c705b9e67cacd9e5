"""Embedding offload: submit, poll, collect and cancel single commands from Python,
without a workflow file."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from offload.config import SystemConfig, build_system_config, load_system_config
from offload.errors import ConfigError, UsageError
from offload.models import Handle, Result, Status, TaskRequest
from offload.plugins import OffloadPluginManager, make_plugin_manager
from offload.polling import AdaptiveInterval
from offload.selection import BackendSet, Selection


class Executor:
    """Runs :class:`TaskRequest` objects on the configured backends.

    >>> executor = Executor()                             # doctest: +SKIP
    >>> handle = executor.submit(request)                 # doctest: +SKIP
    >>> result = executor.wait(handle, on_log=print)      # doctest: +SKIP

    :param config: a :class:`SystemConfig`, a mapping shaped like ``offload.yml``, or
        ``None`` to read ``$OFFLOAD_CONFIG`` / ``./offload.yml`` / the defaults.
    :param plugin_manager: a manager from :func:`make_plugin_manager`; default: a new one.
    """

    def __init__(self, config: SystemConfig | dict[str, Any] | None = None, plugin_manager: OffloadPluginManager | None = None) -> None:
        if config is None:
            config = load_system_config()
        elif not isinstance(config, SystemConfig):
            config = build_system_config(config, "(config)")
        self.system = config
        self.pm = plugin_manager or make_plugin_manager()
        self.backends = BackendSet(self.pm, config)

    def select(self, request: TaskRequest) -> Selection:
        """Which backend would run ``request``, and why each other was skipped."""
        return self.backends.select(request)

    def submit(self, request: TaskRequest, backend: str | None = None) -> Handle:
        """Start ``request`` on ``backend`` (default: the selected one) and return its handle."""
        if backend is None:
            selection = self.select(request)
            if selection.fatal:
                raise ConfigError(selection.fatal)
            if selection.backend is None:
                reasons = [f"{a.backend}: {'; '.join(a.reasons)}" for a in selection.attempts]
                raise UsageError(f"task {request.task_id}: no backend can run it ({' | '.join(reasons)})")
            backend = selection.backend
        instance = self.backends.get(backend)
        request = self.prepare(backend, request)
        handle = self.pm.hook.offload_submit_task(backend=instance, request=request)
        if handle is None:
            raise UsageError(f"task {request.task_id}: no plugin submitted it to {backend!r}")
        return handle  # type: ignore[no-any-return]

    def prepare(self, backend: str, request: TaskRequest) -> TaskRequest:
        """``request`` with every plugin's ``offload_prepare_request`` changes applied."""
        instance = self.backends.get(backend)
        for changes in self.pm.hook.offload_prepare_request(backend=instance, request=request):
            if not changes:
                continue
            changes = dict(changes)
            if "env" in changes:
                changes["env"] = {**request.env, **changes["env"]}
            if "labels" in changes:
                changes["labels"] = {**request.labels, **changes["labels"]}
            request = attrs.evolve(request, **changes)
        return request

    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        """The status of each handle, in order; one batched call per backend."""
        by_backend: dict[str, list[int]] = defaultdict(list)
        for index, handle in enumerate(handles):
            by_backend[handle.backend].append(index)
        statuses: list[Status | None] = [None] * len(handles)
        for name, indexes in by_backend.items():
            found = self.backends.get(name).poll([handles[i] for i in indexes])
            for i, status in zip(indexes, found, strict=True):
                statuses[i] = status
        return [s for s in statuses if s is not None]

    def collect(self, handle: Handle) -> Result:
        """The result of a finished task, with its output params."""
        result = self.pm.hook.offload_collect_result(backend=self.backends.get(handle.backend), handle=handle)
        if result is None:
            raise UsageError(f"task {handle.task_id}: no plugin collected its result")
        return result  # type: ignore[no-any-return]

    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        """Stop the task: ask it to stop, then kill it after ``grace`` seconds."""
        self.backends.get(handle.backend).cancel(handle, grace)

    def wait(self, handle: Handle, on_log: Callable[[str], None] | None = None, timeout: float | None = None) -> Result:
        """Poll ``handle`` until it finishes, passing log lines to ``on_log``; then collect."""
        interval = AdaptiveInterval()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            (status,) = self.poll([handle])
            if status.handle is not None:
                handle = status.handle
            if status.logs:
                interval.changed()
                if on_log is not None:
                    for line in status.logs:
                        on_log(line)
            if status.state.finished:
                return self.collect(handle)
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(handle)
                raise TimeoutError(f"task {handle.task_id} did not finish in {timeout} s")
            self.backends.get(handle.backend).wait([handle], interval.next())

    def run(self, request: TaskRequest, on_log: Callable[[str], None] | None = None, backend: str | None = None) -> Result:
        """Submit ``request`` and wait for its result."""
        return self.wait(self.submit(request, backend), on_log=on_log)

    def close(self) -> None:
        self.backends.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Executor"]

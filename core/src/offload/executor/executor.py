"""Embedding offload: submit, poll, collect and cancel single commands from Python,
without a workflow file."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from offload.executor.config import SystemConfig, build_system_config, load_system_config
from offload.executor.errors import ConfigError, UsageError
from offload.executor.models import Handle, Health, Result, Status, TaskRequest
from offload.executor.plugins import OffloadPluginManager, make_plugin_manager
from offload.executor.polling import AdaptiveInterval
from offload.executor.selection import BackendSet, Selection
from offload.executor.storage import StorageConfig


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

    def backend_names(self) -> list[str]:
        """The installed (registered) backends, by name."""
        return self.backends.names()

    @property
    def task_keys(self) -> frozenset[str]:
        """The task params that hold backend settings (``docker``, ``ecs``, a plugin's own):
        they go to ``TaskRequest.executor_config``, never to the task's environment."""
        return self.backends.task_keys

    def select(self, request: TaskRequest) -> Selection:
        """Which backend would run ``request``, its parsed settings, and why each other was skipped."""
        return self.backends.select(request)

    def _chosen(self, request: TaskRequest, backend: str | Selection | None) -> tuple[str, Any]:
        """The backend to run ``request`` on and its settings for it."""
        if backend is None:
            backend = self.select(request)
        if isinstance(backend, Selection):
            return backend.check(), backend.settings
        settings, problems = self.backends.consider(backend, request)
        problems = [p for p in problems if not p.warning or p.fatal]
        if problems:
            raise ConfigError([attrs.evolve(p, fatal=True) for p in problems])
        return backend, settings

    def prepare(self, request: TaskRequest, backend: str | Selection | None = None) -> tuple[str, TaskRequest]:
        """The backend for ``request`` and the request as it will be submitted: with the
        backend's settings, and every plugin's ``offload_prepare_request`` changes applied.

        :param backend: a :class:`Selection`, a backend name, or ``None`` to select one.
        :raises ConfigError: no backend can run it, or the named one rejects its settings.
        """
        name, settings = self._chosen(request, backend)
        request = attrs.evolve(request, settings=settings)
        instance = self.backends.get(name)
        for changes in self.pm.hook.offload_prepare_request(backend=instance, request=request):
            if not changes:
                continue
            changes = dict(changes)
            if "env" in changes:
                changes["env"] = {**request.env, **changes["env"]}
            if "labels" in changes:
                changes["labels"] = {**request.labels, **changes["labels"]}
            request = attrs.evolve(request, **changes)
        return name, request

    def submit(self, request: TaskRequest, backend: str | Selection | None = None) -> Handle:
        """Start ``request`` and return its handle.

        :param backend: a :class:`Selection` from :meth:`select`, a backend name, or
            ``None`` (default) to select one.
        """
        name, request = self.prepare(request, backend)
        handle = self.pm.hook.offload_submit_task(backend=self.backends.get(name), request=request)
        if handle is None:
            raise UsageError(f"task {request.task_id}: no plugin submitted it to {name!r}")
        return handle  # type: ignore[no-any-return]

    def adopt(self, request: TaskRequest, backend: str | Selection | None = None) -> Handle | None:
        """The handle of a task already started for ``request`` by a driver that died while
        submitting it, or ``None``: then :meth:`submit` it (it was never started)."""
        name, request = self.prepare(request, backend)
        return self.backends.get(name).adopt(request)

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

    def wait_any(self, handles: Sequence[Handle], timeout: float) -> None:
        """Block up to ``timeout`` seconds, or less when one of ``handles`` may have changed.

        With no handles there is nothing to wait for: it returns at once. The handles of one
        backend are waited for by that backend's ``wait``. With several backends, those whose
        tasks can wake them (they override ``Backend.wait``) take turns of at most
        :data:`~offload.executor.polling.SHARED_WAIT` seconds, and the wait ends as soon as one
        of them returns before its turn is over; when none can, it sleeps.
        """
        if not handles:
            return
        groups: dict[str, list[Handle]] = defaultdict(list)
        for handle in handles:
            groups[handle.backend].append(handle)
        if len(groups) == 1:
            ((name, group),) = groups.items()
            self.backends.get(name).wait(group, timeout)
            return
        from offload.executor.backend import Backend
        from offload.executor.polling import SHARED_WAIT

        wakers = [(backend, group) for name, group in groups.items() if type(backend := self.backends.get(name)).wait is not Backend.wait]
        if len(wakers) <= 1:
            if wakers:
                wakers[0][0].wait(wakers[0][1], timeout)  # the others are polled when it returns
            else:
                time.sleep(timeout)
            return
        deadline = time.monotonic() + timeout
        while True:
            for backend, group in wakers:
                turn = min(deadline - time.monotonic(), SHARED_WAIT)
                if turn <= 0:
                    return
                start = time.monotonic()
                backend.wait(group, turn)
                if time.monotonic() - start < turn / 2:
                    return  # woken: something may have changed

    def finished(self, task_name: str, handle: Handle, result: Result) -> None:
        """Tell every plugin that a task finished and its result was kept (``offload_task_finished``)."""
        self.pm.hook.offload_task_finished(task_name=task_name, backend_name=handle.backend, result=result)

    def check(self, name: str) -> Health:
        """The health of backend ``name``."""
        return self.backends.get(name).check()

    def storages(self) -> list[StorageConfig]:
        """Every storage the system config names (each backend's storage sections), in key order."""
        configured = self.backends.context.storages.configured
        return [configured[where] for where in sorted(configured)]

    def check_storage(self, config: StorageConfig) -> Health:
        """The health of one storage of :meth:`storages`: reachable, bucket there, credentials accepted."""
        from offload.executor.errors import OffloadError

        try:
            return self.backends.context.storages.open(config).check()
        except OffloadError as e:
            return Health(ok=False, summary=f"{config.type}: {e}")

    def collect_garbage(self, name: str, tracked: Sequence[Handle], dry_run: bool = False, project_dir: str | None = None) -> list[str]:
        """What backend ``name`` removed (or would) that no journal tracks."""
        return self.backends.get(name).collect_garbage(tracked, dry_run=dry_run, project_dir=project_dir)

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
            self.wait_any([handle], interval.next())

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

"""Choosing the backend of a task, and saying why every other one was skipped.

With ``type: auto`` the first usable backend of ``order`` (default ``ecs, docker, local``,
Digdag's) runs the task. A backend is skipped only when it is *not configured* for
the task (or not installed); a wrong configuration stops the run instead of silently
falling back (Digdag issue #1749 ran a failing ECS task in Docker).

With ``type: X`` (``simple`` is Digdag's name for local) X runs every task it is
configured for. A task it is not configured for (X reports a non-fatal problem: no
``docker:`` image for docker, no task definition for ecs) goes where Digdag's executor
X hands it: ECS to Docker, Docker to local, any other backend to local
(:func:`~offload.executor.config.fallbacks`). A fatal problem of X stops the run, and
so does an X that is not installed.

Each backend considered parses the task's sections it owns (its task keys) once; the
chosen backend's parse travels with the :class:`Selection` to ``submit`` and ``adopt``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from offload.executor.backend import Backend, BackendContext
from offload.executor.config import INSTALL_HINTS, SystemConfig, fallbacks
from offload.executor.errors import ConfigError
from offload.executor.models import Problem, TaskRequest
from offload.executor.plugins import OffloadPluginManager
from offload.executor.storages import Storages


@attrs.frozen
class Attempt:
    """One backend considered for a task, and why it was or was not chosen."""

    backend: str
    chosen: bool
    reasons: tuple[str, ...] = ()


@attrs.frozen
class Selection:
    """The chosen backend (``None`` when none is usable) and every attempt, in order.

    ``settings`` is the chosen backend's parse of the task's sections; it reaches the
    backend as ``request.settings``.
    """

    backend: str | None
    attempts: tuple[Attempt, ...]
    fatal: tuple[Problem, ...] = ()
    settings: Any = attrs.field(default=None, eq=False)
    task_id: str = ""

    def why_none(self) -> str:
        """The one message for a task no backend can run, with each backend's reason."""
        reasons = "; ".join(f"{a.backend}: {', '.join(a.reasons)}" for a in self.attempts)
        return f"no backend can run this task ({reasons})"

    def check(self) -> str:
        """The chosen backend's name; raises :class:`ConfigError` when there is none."""
        if self.fatal:
            raise ConfigError(self.fatal)
        if self.backend is None:
            raise ConfigError([Problem(f"task {self.task_id}" if self.task_id else "", self.why_none(), fatal=True)])
        return self.backend


def install_hint(name: str) -> str:
    dist = INSTALL_HINTS.get(name)
    return f"not installed (pip install {dist})" if dist else "not installed"


class BackendSet:
    """The instantiated backends of one run, built from the system config.

    Backend sections are parsed by each backend's ``parse_config``; a section for a
    backend nobody knows is an error (a misspelt name), and so is a non-empty one for a
    known backend that is not installed (one disabled by ``OFFLOAD_DISABLE_PLUGINS`` is
    the user's choice and only noted by ``explain``).
    """

    def __init__(self, pm: OffloadPluginManager, system: SystemConfig) -> None:
        self.pm = pm
        self.system = system
        self.instances: dict[str, Backend] = {}
        self.configs: dict[str, Any] = {}
        problems: list[Problem] = []
        registry = pm.backends
        self.context = BackendContext(hook=pm.hook, storages=Storages(pm.storages, frozenset(pm.disabled)))
        known = ", ".join(sorted(set(registry.names()) | set(INSTALL_HINTS)))
        for name, section in system.sections.items():
            if name not in registry and name not in INSTALL_HINTS:
                problems.append(Problem(system.where(name), f"unknown backend (known: {known})", fatal=True))
            elif name not in registry and section and name not in pm.disabled:
                # Configured for a backend that is not there: its tasks must not run elsewhere unnoticed.
                problems.append(Problem(system.where(name), f"configures the {name} backend, which is {install_hint(name)}", fatal=True))
        wanted = [system.type] if system.type != "auto" else list(system.order)
        for name in wanted:
            if name not in registry and name not in INSTALL_HINTS:
                key = "type" if system.type != "auto" else "order"
                problems.append(Problem(system.where(key), f"unknown backend {name!r} (known: {known})", fatal=True))
        for name in registry.names():
            cls = registry.get(name)
            assert cls is not None
            section = system.sections.get(name)
            if section is None:
                section = {}
            if not isinstance(section, Mapping):
                problems.append(Problem(system.where(name), "must be a mapping", fatal=True))
                continue
            config, errors = cls.parse_config(section, system.where(name), self.context)
            problems.extend(errors)
            if config is not None:
                self.configs[name] = config
        if problems:
            raise ConfigError(problems)
        #: task keys of every registered backend, and of every backend offload has install hints for
        self.task_keys = frozenset(k for n in registry.names() for k in self._class(n).owned_keys()) | frozenset(INSTALL_HINTS)

    def _class(self, name: str) -> type[Backend]:
        cls = self.pm.backends.get(name)
        if cls is None:
            raise ConfigError([Problem(self.system.where("type"), f"backend {name!r} is {self.unavailable(name)}", fatal=True)])
        return cls

    def get(self, name: str) -> Backend:
        """The run's instance of backend ``name``, made on first use."""
        if name not in self.instances:
            self.instances[name] = self._class(name)(self.configs.get(name), self.context)
        return self.instances[name]

    def names(self) -> list[str]:
        """The registered backends' names."""
        return self.pm.backends.names()

    def unavailable(self, name: str) -> str:
        """Why backend ``name`` is not there: disabled, or not installed and how to install it."""
        if name in self.pm.disabled:
            return "disabled by OFFLOAD_DISABLE_PLUGINS"
        return install_hint(name)

    def settings_of(self, name: str, task: TaskRequest) -> tuple[Any, list[Problem]]:
        """Backend ``name``'s parse of the task's sections it owns."""
        backend = self.get(name)
        sections = {k: task.executor_config[k] for k in backend.owned_keys() if task.executor_config.get(k) is not None}
        return backend.parse_task_config(sections, f"task {task.task_id}")

    def consider(self, name: str, task: TaskRequest) -> tuple[Any, list[Problem]]:
        """Backend ``name``'s settings for ``task`` and every problem it and the plugins find."""
        settings, problems = self.settings_of(name, task)
        if not any(p.fatal or not p.warning for p in problems):
            backend = self.get(name)
            found = self.pm.hook.offload_validate_config(backend=backend, config=backend.config, task=attrs.evolve(task, settings=settings))
            problems += [p for group in found if group for p in group]
        return settings, problems

    def select(self, task: TaskRequest) -> Selection:
        """The backend for ``task``, with the reason each other backend was skipped."""
        forced = self.system.type if self.system.type != "auto" else None
        order = [forced, *fallbacks(forced)] if forced else list(self.system.order)
        attempts: list[Attempt] = []
        for name in order:
            if name not in self.pm.backends:
                attempts.append(Attempt(name, False, (self.unavailable(name),)))
                if name == forced:
                    break  # the backend the config asks for is not there: no other runs in its place
                continue
            settings, problems = self.consider(name, task)
            warnings = tuple(f"warning: {p}" for p in problems if p.warning and not p.fatal)
            problems = [p for p in problems if p.fatal or not p.warning]
            fatal = tuple(p for p in problems if p.fatal)
            if fatal:
                attempts.append(Attempt(name, False, tuple(str(p) for p in fatal)))
                return Selection(None, tuple(attempts), fatal, task_id=task.task_id)
            if problems:
                attempts.append(Attempt(name, False, tuple(str(p) for p in problems)))
                continue
            skipped = [a.backend for a in attempts]
            ignored = [] if name == forced else self._ignored_sections(name, task, skipped if forced else None)
            if ignored:
                attempts.append(Attempt(name, False, tuple(str(p) for p in ignored)))
                return Selection(None, tuple(attempts), tuple(ignored), task_id=task.task_id)
            attempts.append(Attempt(name, True, (self._why(name, forced), *warnings)))
            return Selection(name, tuple(attempts), settings=settings, task_id=task.task_id)
        return Selection(None, tuple(attempts), task_id=task.task_id)

    def _why(self, chosen: str, forced: str | None) -> str:
        """Why ``chosen`` runs the task, for ``offload explain``."""
        if forced is None:
            return "configured for this task"
        written = f"{self.system.type_alias} (Digdag's name for {forced})" if self.system.type_alias else forced
        if chosen == forced:
            return f"forced by command_executor.type: {written}"
        return f"command_executor.type is {written}, but {forced} is not configured for this task: falls back to {chosen}, as in Digdag"

    def _ignored_sections(self, chosen: str, task: TaskRequest, only: list[str] | None = None) -> list[Problem]:
        """Sections of a backend that is not here, which the chosen one would ignore.

        A task that says ``kubernetes:`` is not run somewhere else silently because
        offload-kubernetes is missing: the run stops and says what to install. ``only``
        limits this to the sections of those backends (the ones a forced backend's task
        went past on its way to ``chosen``).
        """
        reads = self.get(chosen).owned_keys()
        problems = []
        for key in sorted(task.executor_config):
            if only is not None and key not in only:
                continue
            if key in INSTALL_HINTS and key not in self.pm.backends and key not in reads and task.executor_config[key] is not None:
                message = f"set for this task, but the {key} backend is {self.unavailable(key)}; {chosen} would ignore it"
                problems.append(Problem(f"task {task.task_id}: {key}", message, fatal=True))
        return problems

    def close(self) -> None:
        for backend in self.instances.values():
            backend.close()
        self.context.storages.close()

"""Choosing the backend of a task, and saying why every other one was skipped.

With ``type: auto`` the first usable backend of ``order`` (default ``ecs, docker, local``,
Digdag's) runs the task. A backend is skipped only when it is *not configured* for
the task (or not installed); a wrong configuration stops the run instead of silently
falling back (Digdag issue #1749 ran a failing ECS task in Docker).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from offload.backend import Backend, BackendContext
from offload.config import KNOWN_BACKENDS, SystemConfig
from offload.errors import ConfigError
from offload.models import Problem, TaskRequest
from offload.plugins import OffloadPluginManager


@attrs.frozen
class Attempt:
    """One backend considered for a task, and why it was or was not chosen."""

    backend: str
    chosen: bool
    reasons: tuple[str, ...] = ()


@attrs.frozen
class Selection:
    """The chosen backend (``None`` when none is usable) and every attempt, in order."""

    backend: str | None
    attempts: tuple[Attempt, ...]
    fatal: tuple[Problem, ...] = ()


def install_hint(name: str) -> str:
    dist = KNOWN_BACKENDS.get(name)
    return f"not installed (pip install {dist})" if dist else "not installed"


class BackendSet:
    """The instantiated backends of one run, built from the system config.

    Backend sections are parsed by each backend's ``parse_config``; a section for a
    backend nobody knows is an error (a misspelt name), one for a known backend that
    is not installed is remembered for ``explain``.
    """

    def __init__(self, pm: OffloadPluginManager, system: SystemConfig) -> None:
        self.pm = pm
        self.system = system
        self.instances: dict[str, Backend] = {}
        self.configs: dict[str, Any] = {}
        problems: list[Problem] = []
        registry = pm.backends
        for name in system.sections:
            if name not in registry and name not in KNOWN_BACKENDS:
                known = ", ".join(sorted(set(registry.names()) | set(KNOWN_BACKENDS)))
                problems.append(Problem(system.where(name), f"unknown backend (known: {known})", fatal=True))
        wanted = [system.type] if system.type != "auto" else list(system.order)
        for name in wanted:
            if name not in registry and name not in KNOWN_BACKENDS:
                key = "type" if system.type != "auto" else "order"
                known = ", ".join(sorted(set(registry.names()) | set(KNOWN_BACKENDS)))
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
            config, errors = cls.parse_config(section, system.where(name))
            problems.extend(errors)
            if config is not None:
                self.configs[name] = config
        if problems:
            raise ConfigError(problems)
        self.context = BackendContext(hook=pm.hook)

    def get(self, name: str) -> Backend:
        """The run's instance of backend ``name``, made on first use."""
        if name not in self.instances:
            cls = self.pm.backends.get(name)
            if cls is None:
                raise ConfigError([Problem(self.system.where("type"), f"backend {name!r} is {self.unavailable(name)}", fatal=True)])
            self.instances[name] = cls(self.configs.get(name), self.context)
        return self.instances[name]

    def unavailable(self, name: str) -> str:
        """Why backend ``name`` is not there: disabled, or not installed and how to install it."""
        if name in self.pm.disabled:
            return "disabled by OFFLOAD_DISABLE_PLUGINS"
        return install_hint(name)

    def select(self, task: TaskRequest, task_name: str = "") -> Selection:
        """The backend for ``task``, with the reason each other backend was skipped."""
        forced = self.system.type != "auto"
        order = [self.system.type] if forced else list(self.system.order)
        attempts: list[Attempt] = []
        for name in order:
            if name not in self.pm.backends:
                attempts.append(Attempt(name, False, (self.unavailable(name),)))
                continue
            backend = self.get(name)
            found = self.pm.hook.offload_validate_config(backend=backend, config=backend.config, task=task)
            problems = [p for group in found if group for p in group]
            warnings = tuple(f"warning: {p}" for p in problems if p.warning and not p.fatal)
            problems = [p for p in problems if p.fatal or not p.warning]
            fatal = tuple(p for p in problems if p.fatal)
            if fatal:
                attempts.append(Attempt(name, False, tuple(str(p) for p in fatal)))
                return Selection(None, tuple(attempts), fatal)
            if problems:
                attempts.append(Attempt(name, False, tuple(str(p) for p in problems)))
                continue
            why = "forced by command_executor.type" if forced else "configured for this task"
            attempts.append(Attempt(name, True, (why, *warnings)))
            return Selection(name, tuple(attempts))
        return Selection(None, tuple(attempts))

    def close(self) -> None:
        for backend in self.instances.values():
            backend.close()

"""Errors a user can cause. The CLI prints them as one message each, never a traceback."""

from __future__ import annotations

from collections.abc import Iterable

from offload.executor.models import Problem


class OffloadError(Exception):
    """Base of offload's errors; ``exit_status`` is what the CLI exits with."""

    exit_status = 1


class UsageError(OffloadError):
    """Bad input: a config, a workflow file, a command line. Exit status 2, nothing launched."""

    exit_status = 2


class ConfigError(UsageError):
    """One or more problems found in configuration or a workflow; all reported at once."""

    def __init__(self, problems: Iterable[Problem | str]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem("", p, fatal=True) for p in problems]
        super().__init__("\n".join(str(p) for p in self.problems))


class PluginError(UsageError, ValueError):
    """Installed plugins that cannot work together (two classes claim one backend name).

    Exit status 2, as for a config error: nothing is launched until the installation is fixed.
    """


class BackendError(OffloadError):
    """A backend could not do what it was asked at run time (engine down, API refused).

    Never a reason to fall back to another backend (Digdag issue #1749).
    """


class TaskNotFound(BackendError):
    """The handle names a task that the backend no longer knows."""

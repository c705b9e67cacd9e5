"""The values that cross the boundary between the core and a backend.

Every model is a frozen attrs class, serialised by the single converter in
:mod:`offload.executor.serialization`, so that a :class:`Handle` written to the journal
can be read back by another process and used to poll, collect or cancel.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs


def _frozen_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _str_tuple(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen
class Resources:
    """What a task asks of the machine it runs on; ``None`` means the backend's default.

    ``memory`` is in MiB, ``cpu`` in cores (``0.5`` is half a core).
    """

    cpu: float | None = None
    memory: int | None = None
    gpu: int | None = None


@attrs.frozen
class TaskRequest:
    """One command to run, independent of where it runs.

    Paths: ``project_dir`` is absolute on the driver's machine; ``workdir`` and
    ``io_dir`` are relative to it, so a backend that ships the project elsewhere
    (a container, an ECS task) can rebuild the same layout. ``argv`` refers to
    files with paths relative to ``workdir``.

    ``executor_config`` holds the task's raw sections for the backends (``docker: {...}``);
    ``settings`` is the chosen backend's parse of its own sections (see
    :meth:`offload.Backend.parse_task_config`), set by the core before the backend sees
    the request. ``settings`` is not serialised: a process that reads a request back
    parses its ``executor_config`` again.
    """

    task_id: str
    argv: tuple[str, ...] = attrs.field(converter=_str_tuple)
    project_dir: str
    workdir: str = "."
    io_dir: str = ".offload/io"
    env: dict[str, str] = attrs.field(factory=dict, converter=_frozen_dict)
    timeout: float | None = None
    resources: Resources = attrs.field(factory=Resources)
    executor_config: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)
    labels: dict[str, str] = attrs.field(factory=dict, converter=_frozen_dict)
    settings: Any = attrs.field(default=None, eq=False)

    @property
    def io_path(self) -> str:
        """Absolute path of the io directory on the driver's machine."""
        import os.path

        return os.path.normpath(os.path.join(self.project_dir, self.io_dir))

    @property
    def work_path(self) -> str:
        """Absolute path of the working directory on the driver's machine."""
        import os.path

        return os.path.normpath(os.path.join(self.project_dir, self.workdir))


@attrs.frozen
class Handle:
    """What is needed to find a submitted task again: enough to poll, collect or cancel
    it from another process after the driver restarts.

    ``state`` belongs to the backend and must be JSON-able (a pid, a container id,
    a task ARN, a log cursor). ``io_path`` is the task's io directory on the driver.
    """

    backend: str
    task_id: str
    io_path: str
    state: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)

    def with_state(self, **changes: Any) -> Handle:
        """A copy of this handle with ``changes`` merged into its state."""
        return attrs.evolve(self, state={**self.state, **changes})


class TaskState(str, enum.Enum):
    """The one vocabulary of task states, for backends, the runner and the journal.

    ``SUBMITTING`` is the journal's alone (a driver was submitting the task when it
    stopped); a backend reports the others.
    """

    SUBMITTING = "submitting"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def finished(self) -> bool:
        return self not in (TaskState.SUBMITTING, TaskState.PENDING, TaskState.RUNNING)


@attrs.frozen
class Status:
    """What one poll learnt about one task.

    ``logs`` holds the log lines that appeared since the previous poll; ``handle``,
    when set, replaces the task's handle (a backend advances its log cursor this way).
    """

    state: TaskState
    exit_code: int | None = None
    reason: str | None = None
    logs: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    handle: Handle | None = None


@attrs.frozen
class Result:
    """The outcome of a finished task.

    ``store_params``, ``export_params`` and ``subtask_config`` (the tasks it generated,
    as a task body: Digdag's ``add_subtask``) come from the task's ``output.json``;
    ``error`` is set when the task failed (a message, never a traceback of offload's).
    """

    state: TaskState
    exit_code: int | None = None
    error: str | None = None
    store_params: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)
    export_params: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)
    subtask_config: dict[str, Any] = attrs.field(factory=dict, converter=_frozen_dict)
    output_files: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.state is TaskState.SUCCEEDED

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


@attrs.frozen
class Problem:
    """Why something cannot be used as configured: ``where`` names the file and key path.

    A problem that is not ``fatal`` means "not configured for this task": selection moves
    on to the next backend. A ``fatal`` one (a wrong type, a forbidden option) stops the
    run with exit status 2 before anything is launched. A ``warning`` neither: the
    backend stays usable and the warning is shown with the choice (``offload explain``
    flags a host-escaping Docker run option this way).
    """

    where: str
    message: str
    fatal: bool = False
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@attrs.frozen
class Health:
    """The answer of :meth:`Backend.check`: healthy or not, and what was found."""

    ok: bool
    summary: str
    details: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


@attrs.frozen
class ImageSpec:
    """An image to run a task in, built from ``image`` plus ``build`` lines when given.

    Mirrors Digdag's ``docker:`` keys ``image``, ``build`` and ``build_options``.
    """

    image: str
    build: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    build_options: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    @property
    def needs_build(self) -> bool:
        return bool(self.build)

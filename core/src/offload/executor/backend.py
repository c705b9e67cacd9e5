"""The contract a backend implements, and the registry the core keeps of them.

A backend is a class with a ``name``, a ``config_type`` (an attrs class for its section
of the system config, ``command_executor.<name>``), the keys it owns in a task with a
``task_config_type`` for them, and six methods. The core makes one instance per run and
drives it; a plugin registers the class through ``offload_register_backends(register)``.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from offload.executor.models import Handle, Health, Problem, Result, Status, TaskRequest
from offload.executor.storages import Storages


@attrs.frozen
class NoConfig:
    """The config of a backend that takes none (an empty section)."""


@attrs.frozen
class BackendContext:
    """What the core hands a backend besides its config.

    ``hook`` is the plugin manager's hook relay, so a backend can call other hooks
    (the Docker backend calls ``offload_dockerfile`` and ``offload_build_image``).
    ``storages`` parses a storage section of the backend's config and opens the storage
    it names (``context.storages.parse(section, where)``, then ``.open(parsed)``), so a
    backend uses S3 or GCS without importing their plugins.
    """

    hook: Any = None
    storages: Storages = attrs.field(factory=Storages)


class Backend(abc.ABC):
    """Base class of every backend.

    Subclasses set ``name`` and, if they take settings, ``config_type``. Methods that
    block must return promptly: ``submit`` starts the task and returns; ``poll`` looks.
    """

    name: ClassVar[str]
    config_type: ClassVar[type] = NoConfig
    #: The keys of a task's params that hold this backend's task settings (default: its
    #: ``name``, as ``docker:``). The core keeps them out of the task's environment and
    #: hands them to :meth:`parse_task_config`. A backend may read a key another backend
    #: owns too (ECS reads ``docker.image``): list it here.
    task_keys: ClassVar[tuple[str, ...]] = ()
    #: The attrs class of a task's settings; ``None`` when the backend takes none.
    task_config_type: ClassVar[type | None] = None
    #: One line telling a user how to get this backend, shown by ``offload explain``.
    install_hint: ClassVar[str] = ""

    def __init__(self, config: Any = None, context: BackendContext | None = None) -> None:
        self.config = config if config is not None else self.config_type()
        self.context = context or BackendContext()

    @classmethod
    def parse_config(cls, data: Mapping[str, Any], where: str, context: BackendContext | None = None) -> tuple[Any, list[Problem]]:
        """Turn this backend's section of the system config into ``config_type``.

        The default structures ``data`` with the core's strict converter and reports
        every problem with its key path under ``where``. Override it when the section
        has a shape an attrs class cannot express (Digdag's ``ecs.<name>.*`` keys), or
        holds a storage section: parse that with ``context.storages.parse``, so that its
        problems are reported with the rest, before anything runs.
        """
        from offload.executor.config import structure_strict

        return structure_strict(cls.config_type, data, where)

    @classmethod
    def owned_keys(cls) -> tuple[str, ...]:
        """The task keys this backend reads: ``task_keys``, else its name."""
        return tuple(cls.task_keys) or (cls.name,)

    def parse_task_config(self, sections: Mapping[str, Any], where: str) -> tuple[Any, list[Problem]]:
        """Turn a task's sections into its settings, once per task, before it is chosen.

        :param sections: the task's values of :meth:`owned_keys` that it sets (no key when unset).
        :param where: how problems name the task (``"task +flow+step"``); a problem's
            ``where`` is that plus the key path (``"task +flow+step: docker.image"``).
        :return: the settings (reaching ``usable``, ``submit`` and ``adopt`` as
            ``request.settings``) and the problems found: fatal ones stop the run, others
            mean "not configured for this task" (selection moves on).

        The default structures the one key's section (``{}`` when unset) into
        ``task_config_type`` with the core's strict converter; with several keys, each
        key is a field of ``task_config_type``. A backend without a ``task_config_type``
        takes no task settings: a task that sets its key gets a fatal problem.
        """
        from offload.executor.config import structure_strict

        keys = self.owned_keys()
        config_type = self.task_config_type
        if config_type is None:
            return None, [Problem(f"{where}: {key}", f"the {self.name} backend takes no task settings", fatal=True) for key in keys if key in sections]
        if len(keys) == 1:
            return structure_strict(config_type, sections.get(keys[0]), f"{where}: {keys[0]}")
        values: dict[str, Any] = {}
        problems: list[Problem] = []
        fields = attrs.fields_dict(attrs.resolve_types(config_type))
        for key in keys:
            if key in sections:
                field_type: Any = fields[key].type
                values[key], found = structure_strict(field_type, sections[key], f"{where}: {key}")
                problems += found
        if problems:
            return None, problems
        return config_type(**values), []

    def usable(self, task: TaskRequest) -> list[Problem]:
        """Problems that keep this backend from running ``task``; empty means usable.

        ``task.settings`` holds what :meth:`parse_task_config` returned for it.

        Return non-fatal problems for "not configured for this task" (selection then
        tries the next backend) and fatal ones for a configuration that is wrong.
        """
        return []

    @abc.abstractmethod
    def submit(self, request: TaskRequest) -> Handle:
        """Start ``request`` and return its handle without waiting for it to finish."""

    @abc.abstractmethod
    def poll(self, handles: Sequence[Handle]) -> list[Status]:
        """The status of each handle, in the same order, with log lines new since last time.

        A poll may act as well as look (kill a task past its cancel deadline, start a
        container a dead driver created), but only in ways that are safe to repeat: the
        run may cut a poll short on Ctrl-C and discard what it returned, so the next
        poll starts again from the cursors in the handles it was given.
        """

    @abc.abstractmethod
    def collect(self, handle: Handle) -> Result:
        """The result of a finished task. Output files are in ``handle.io_path`` afterwards.

        The core reads ``output.json`` from there, so a backend need only set the state,
        exit code, error and timings. Resources kept for the task may be released here.
        """

    @abc.abstractmethod
    def cancel(self, handle: Handle, grace: float = 10.0) -> None:
        """Stop the task: ask it to stop, and kill it after ``grace`` seconds.

        Return promptly, without waiting for the task to stop: the run cancels every
        running task this way, one after the other, and they share one grace period.
        A backend that cannot kill from here arranges for ``poll`` to kill the task once
        ``grace`` has passed; ``grace=0`` kills at once. A task that had already finished
        keeps its real result: only a task this cancel stopped is ``cancelled``.
        """

    def wait(self, handles: Sequence[Handle], timeout: float) -> None:
        """Block up to ``timeout`` seconds, or less when one of ``handles`` may have changed.

        The poll loop calls it between polls. The default sleeps; a backend that can be
        woken by its tasks (the local one watches process exits) returns early.
        """
        time.sleep(timeout)

    def adopt(self, request: TaskRequest) -> Handle | None:
        """The handle of a task already started for ``request``, if there is one.

        Called on resume for a task whose submission was interrupted before its handle
        was journaled, so that it is not run twice. The default finds nothing.
        """
        return None

    def collect_garbage(self, tracked: Sequence[Handle], dry_run: bool = False, project_dir: str | None = None) -> list[str]:
        """Remove what offload left behind on this backend that no journal tracks.

        :param tracked: handles of tasks the project's journal still tracks; keep those.
        :param dry_run: only say what would be removed.
        :param project_dir: the project whose leftovers to remove (default: the current directory).
        :return: one line per thing removed (or that would be, with ``dry_run``).
        """
        return []

    def check(self) -> Health:
        """Whether this backend can run tasks here, with what was found."""
        return Health(ok=True, summary=f"{self.name}: ready")

    def close(self) -> None:  # noqa: B027 - optional hook for subclasses
        """Release clients and connections; called once at the end of a run."""

"""The Docker backend's two configs: the system section and a task's ``docker:`` keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

import offload
from offload import Problem
from offload_docker.engine import describe_engine_value

if TYPE_CHECKING:  # parsed when a task has docker settings: a run without them does not load them
    from offload_docker.options import BuildOptions, RunOptions


@attrs.frozen
class DockerSystemConfig:
    """``command_executor.docker`` in the system config.

    ``host``: the default engine address (``unix://``, ``tcp://``, ``ssh://``); empty means
    ``$DOCKER_HOST`` or the local socket. ``stop_grace``: seconds between SIGTERM and
    SIGKILL when a task times out. ``init``: run an init process as PID 1, so the command
    gets signals and its zombies are reaped. ``images``: images ``offload check docker``
    looks for. ``api_timeout``: seconds the poll loop and cancel wait for one answer of
    the engine (a hung engine then costs seconds, not the SDK's 60). ``allow_host_access``:
    ``false`` refuses run options that give a container the host (``--privileged``,
    ``-v /:/host``, ``--pid=host``...); ``true`` runs them, with a warning.
    ``start_concurrency``: containers created and started at once (the engine does much
    of that work in parallel; more than a few per core only queues inside it).
    ``reconcile_interval``: seconds between two lists of the running containers that
    catch what the engine's event stream may have missed.
    """

    host: str = ""
    stop_grace: float = 10.0
    init: bool = True
    images: tuple[str, ...] = ()
    api_timeout: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    allow_host_access: bool = True
    start_concurrency: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    reconcile_interval: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))


@attrs.frozen
class DockerTaskConfig:
    """A task's ``docker:`` keys, as Digdag names them.

    ``selinux`` is typed ``Any`` because it takes ``true``/``false`` (Digdag's) or the
    relabel letter ``z``/``Z``; :func:`selinux_suffix` checks it.
    """

    image: str | None = None
    docker: str = "docker"
    run_options: tuple[str, ...] = ()
    pull_always: bool = False
    selinux: Any = False
    build: tuple[str, ...] = ()
    build_options: tuple[str, ...] = ()


@attrs.frozen
class TaskSettings:
    """Everything the backend needs from a task's ``docker:`` keys, checked."""

    image: str
    engine: str | None
    run: RunOptions
    build: BuildOptions
    spec: offload.ImageSpec
    pull_always: bool
    relabel: str


def selinux_suffix(value: Any) -> str | None:
    """The bind-mount relabel option for ``selinux``: ``''``, ``'z'`` or ``'Z'``; None if invalid."""
    if value in ("z", "Z"):
        return str(value)
    if isinstance(value, bool):
        return "Z" if value else ""
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
        return "Z" if value.strip().lower() in ("true", "yes", "on") else ""
    return None


def parse_settings(raw: Any, at: str, system: DockerSystemConfig | None = None) -> tuple[TaskSettings | None, list[Problem]]:
    """A task's settings from its ``docker:`` section ``raw``, or ``None`` and why not.

    :param raw: the section as the task wrote it; ``None`` when the task has none.
    :param at: where the section is, for problems (``"task +flow+step: docker"``).
    :param system: the backend's system config; its ``host`` and ``allow_host_access``
        judge run options that give the container the host.

    No ``docker:`` or no ``image`` is a non-fatal problem ("not configured": selection
    moves on, as Digdag falls back to local); anything malformed is fatal. Run options
    that give the container the host come back as warnings with the settings, or as
    fatal problems when ``system.allow_host_access`` is false.
    """
    if raw is None:
        return None, [Problem(at, "not configured for this task (no docker: keys)")]
    parsed, problems = offload.structure_strict(DockerTaskConfig, raw, at)
    if parsed is None:
        return None, problems
    if not parsed.image:
        return None, [Problem(f"{at}.image", "not set, so the task does not run in Docker")]
    from offload_docker.options import parse_build_options, parse_run_options
    from offload_docker.policy import host_access

    relabel = selinux_suffix(parsed.selinux)
    if relabel is None:
        problems.append(Problem(f"{at}.selinux", f"must be true, false, z or Z, got {parsed.selinux!r}", fatal=True))
    engine, engine_problem = describe_engine_value(parsed.docker)
    if engine_problem:
        problems.append(Problem(f"{at}.docker", engine_problem, fatal=True))
    run, run_problems = parse_run_options(parsed.run_options)
    problems.extend(Problem(f"{at}.run_options", p, fatal=True) for p in run_problems)
    build, build_problems = parse_build_options(parsed.build_options)
    problems.extend(Problem(f"{at}.build_options", p, fatal=True) for p in build_problems)
    allowed = system is None or system.allow_host_access
    for phrase in host_access(run, _socket_of(engine or (system.host if system else "") or "")):
        if allowed:
            problems.append(Problem(f"{at}.run_options", f"{phrase} (command_executor.docker.allow_host_access: false refuses it)", warning=True))
        else:
            problems.append(Problem(f"{at}.run_options", f"{phrase}; refused: command_executor.docker.allow_host_access is false", fatal=True))
    if any(not p.warning for p in problems):
        return None, problems
    spec = offload.ImageSpec(image=parsed.image, build=parsed.build, build_options=parsed.build_options)
    settings = TaskSettings(
        image=parsed.image,
        engine=engine,
        run=run,
        build=build,
        spec=spec,
        pull_always=parsed.pull_always,
        relabel=relabel or "",
    )
    return settings, problems


def _socket_of(address: str) -> str | None:
    return address.removeprefix("unix://") if address.startswith("unix://") else None

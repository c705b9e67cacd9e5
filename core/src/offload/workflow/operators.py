"""Turning an operator task (``sh>``, ``py>``, ``rb>``) into a :class:`TaskRequest`.

The command and its inputs are written into the task's io directory (the only channel
for files in and out, as in Digdag), and ``argv`` refers to them by paths relative to
the working directory, so the same request runs on this machine, in a container with
the project mounted, or in an ECS task that unpacks the project elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Collection, Mapping
from typing import Any

import attrs

from offload.executor.errors import ConfigError
from offload.executor.models import Problem, Resources, TaskRequest
from offload.workflow.params import render_value

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Params that configure how a task runs rather than what it computes (besides the
#: backends' task keys, which the executor knows). ``python``, ``ruby`` and ``require``
#: configure it too, but stay visible to the task as params, as in Digdag.
RUN_KEYS = ("timeout", "resources")


@attrs.frozen
class RequestContext:
    """Where and as what a task runs: ids, paths and labels decided by the runner."""

    task_id: str
    task_name: str
    project_dir: str
    io_dir: str
    labels: dict[str, str] = attrs.field(factory=dict)


def _make_dir(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, one system call when the parent is there."""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def _write_json(path: str, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, default=str)


def task_env(params: Mapping[str, Any], env: Mapping[str, str], task_keys: Collection[str]) -> dict[str, str]:
    """Params with valid names as environment variables (Digdag's ``sh>``), then ``_env``;
    never the backends' settings (``task_keys``)."""
    out = {k: render_value(v) for k, v in params.items() if _ENV_NAME.match(k) and k not in task_keys}
    out.update(env)
    return out


def _timeout(task_name: str, params: Mapping[str, Any]) -> float | None:
    value = params.get("timeout")
    if value is None:
        return None
    number = None
    if not isinstance(value, (bool, dict, list)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
    if number is None or not math.isfinite(number) or number <= 0:
        raise ConfigError([Problem(f"{task_name}: timeout", f"must be a number of seconds above 0, got {value!r}", fatal=True)])
    return number


def _resources(task_name: str, params: Mapping[str, Any]) -> Resources:
    from offload.executor.config import structure_strict

    value = params.get("resources")
    if value is None:
        return Resources()
    resources, problems = structure_strict(Resources, value, f"{task_name}: resources")
    if problems or resources is None:
        raise ConfigError(problems)
    return resources


def run_settings(task_name: str, params: Mapping[str, Any]) -> tuple[float | None, Resources]:
    """The task's ``timeout`` and ``resources``; :class:`ConfigError` with every problem of both."""
    problems: list[Problem] = []
    timeout, resources = None, Resources()
    try:
        timeout = _timeout(task_name, params)
    except ConfigError as e:
        problems.extend(e.problems)
    try:
        resources = _resources(task_name, params)
    except ConfigError as e:
        problems.extend(e.problems)
    if problems:
        raise ConfigError(problems)
    return timeout, resources


def operator_setting(params: Mapping[str, Any], namespace: str, key: str) -> Any:
    """An operator's setting as Digdag nests it: ``key`` itself, else ``namespace.key``
    (``_export: {py: {python: ...}}`` sets ``python`` for every ``py>`` task under it)."""
    if params.get(key) is not None:
        return params[key]
    section = params.get(namespace)
    return section.get(key) if isinstance(section, Mapping) else None


def interpreter(task_name: str, params: Mapping[str, Any], namespace: str, key: str, default: str) -> tuple[str, ...]:
    """``python:``/``ruby:`` as a command: a string (the program) or a list (program and
    its arguments, such as ``[python3, -X, utf8]``)."""
    value = operator_setting(params, namespace, key)
    if value is None or value == "":
        return (default,)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return tuple(str(v) for v in value)
    raise ConfigError([Problem(f"{task_name}: {key}", f"must be a program or a list of a program and its arguments, got {value!r}", fatal=True)])


def executor_config(params: Mapping[str, Any], task_keys: Collection[str]) -> dict[str, Any]:
    """The task's sections for the backends: its params named by a backend's task key."""
    return {k: params[k] for k in sorted(task_keys) if params.get(k) is not None}


def build_request(
    operator: str, command: str, params: Mapping[str, Any], env: Mapping[str, str], ctx: RequestContext, task_keys: Collection[str]
) -> TaskRequest:
    """The request for one operator task; writes its files into the io directory.

    ``task_keys`` are the params that hold backend settings (``Executor.task_keys``).
    """
    timeout, resources = run_settings(ctx.task_name, params)
    io_path = os.path.normpath(os.path.join(ctx.project_dir, ctx.io_dir))
    _make_dir(io_path)
    io_rel = ctx.io_dir  # the working directory is the project's root
    full_env = {**task_env(params, env, task_keys), "OFFLOAD_IO_DIR": io_rel, "OFFLOAD_TASK_NAME": ctx.task_name}
    if operator == "sh>":
        with open(os.path.join(io_path, "runner.sh"), "w", encoding="utf-8") as f:
            f.write(command if command.endswith("\n") else command + "\n")
        argv: tuple[str, ...] = ("/bin/sh", f"{io_rel}/runner.sh")
    elif operator in ("py>", "rb>"):
        from offload.workflow.runtime import install

        install(io_path, operator)
        clean = {k: v for k, v in params.items() if k not in RUN_KEYS and k not in task_keys}
        _write_json(os.path.join(io_path, "input.json"), {"params": clean, "task_name": ctx.task_name})
        if operator == "py>":
            argv = (*interpreter(ctx.task_name, params, "py", "python", "python3"), f"{io_rel}/py_runner.py", io_rel, command)
        else:
            require = operator_setting(params, "rb", "require")
            argv = (*interpreter(ctx.task_name, params, "rb", "ruby", "ruby"), f"{io_rel}/rb_runner.rb", io_rel, command, render_value(require))
    else:
        raise ConfigError([Problem(ctx.task_name, f"unknown operator {operator!r}", fatal=True)])
    return TaskRequest(
        task_id=ctx.task_id,
        argv=argv,
        project_dir=ctx.project_dir,
        workdir=".",
        io_dir=ctx.io_dir,
        env=full_env,
        timeout=timeout,
        resources=resources,
        executor_config=executor_config(params, task_keys),
        labels=dict(ctx.labels),
    )

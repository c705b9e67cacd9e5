"""Digdag's operators that run inside the engine, with no backend: ``echo>``, ``fail>``,
``call>``, ``if>``, ``for_each>``, ``for_range>`` and ``loop>``.

Each one runs in the driver and ends at once: ``echo>`` writes its message to the task's
log, ``fail>`` fails with its message, and the others make subtasks, as Digdag does, which
the runner then runs after the task (``subtask_config`` of the result, the same channel
as ``digdag.env.add_subtask``): ``if>`` its ``_do`` (or ``_else_do``), ``for_each>``,
``for_range>`` and ``loop>`` one ``_do`` per value with the value exported to it, and
``call>`` the body of another workflow file. The subtasks run in order unless the task
says ``_parallel``.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from offload.executor.models import Result, TaskState
from offload.workflow.params import render_value

ENGINE_OPERATORS = ("echo>", "fail>", "call>", "if>", "for_each>", "for_range>", "loop>")
_NEEDS_DO = ("if>", "for_each>", "for_range>", "loop>")
_RANGE_KEYS = ("from", "to", "step", "slices")


class EngineError(Exception):
    """An engine operator cannot run with the values it was given; the task fails with this."""


def templates_of(operator: str, body: Mapping[str, Any]) -> list[Any]:
    """The task bodies an engine operator makes subtasks from (checked before a run)."""
    keys = ("_do", "_else_do") if operator == "if>" else ("_do",) if operator in _NEEDS_DO else ()
    return [body[key] for key in keys if body.get(key) is not None]


#: Engine operators that cannot store params: a check before the run looks past them.
STORELESS = ("echo>", "fail>", "if>", "for_each>", "for_range>", "loop>")


def exported_names(operator: str, command: Any) -> set[str] | None:
    """The params an engine operator gives its subtasks (``None``: known only at run time)."""
    if operator == "loop>":
        return {"i"}
    if operator == "for_range>":
        return {"range"}
    if operator == "for_each>":
        return {str(k) for k in command} if isinstance(command, Mapping) else None
    return set()


def engine_problems(operator: str, command: Any, body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with an engine operator task as written: ``(key, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    if operator == "if>":
        if body.get("_do") is None and body.get("_else_do") is None:
            problems.append(("_do", "if> needs a _do or an _else_do: the tasks it runs"))
    elif operator in _NEEDS_DO and body.get("_do") is None:
        problems.append(("_do", f"{operator} needs a _do: the tasks it runs"))
    if operator == "if>" and not isinstance(command, (bool, str)):
        problems.append((operator, f"must be true or false (or a ${{param}} holding one), got {command!r}"))
    elif operator == "for_each>" and not (isinstance(command, (Mapping, str))):
        problems.append((operator, "must be a mapping of names to lists of values, such as {fruit: [apple, orange]}"))
    elif operator == "for_range>":
        if not isinstance(command, Mapping):
            problems.append((operator, "must be a mapping with from, to and step or slices"))
        else:
            problems += [(f"{operator}.{k}", f"unknown key (known: {', '.join(_RANGE_KEYS)})") for k in command if k not in _RANGE_KEYS]
    elif operator == "loop>" and (isinstance(command, (bool, Mapping, list)) or command is None):
        problems.append((operator, f"must be a count of iterations, got {command!r}"))
    elif operator == "call>" and not (isinstance(command, str) and command.strip()):
        problems.append((operator, f"must be the path of a workflow file, got {command!r}"))
    elif operator in ("echo>", "fail>") and isinstance(command, (Mapping, list)):
        problems.append((operator, f"must be a message, got {type(command).__name__}"))
    return problems


def _done(state: TaskState, error: str | None = None, subtasks: Mapping[str, Any] | None = None) -> Result:
    now = time.time()
    return Result(state=state, exit_code=0 if state is TaskState.SUCCEEDED else 1, error=error, subtask_config=subtasks or {}, started_at=now, finished_at=now)


def _with_export(body: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` (a ``_do``) with ``values`` added to its ``_export``."""
    out = dict(body) if isinstance(body, Mapping) else {}
    out["_export"] = {**(out.get("_export") or {}), **values}
    return out


def _group(task_body: Mapping[str, Any], children: Mapping[str, Any]) -> dict[str, Any]:
    """The subtasks' group: the children, run as the task's ``_parallel`` says."""
    out = dict(children)
    if "_parallel" in task_body:
        out["_parallel"] = task_body["_parallel"]
    return out


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise EngineError(f"if>: must be true or false, got {value!r} (offload evaluates no JavaScript: give a param holding true or false)")


def _values(name: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise EngineError(f"for_each>: {name}: must be a list, or a JSON array in a string, got {value!r}") from None
    if not isinstance(value, list):
        raise EngineError(f"for_each>: {name}: must be a list of values, got {value!r}")
    return value


def name_tag(value: Any) -> str:
    """Up to 8 characters of ``value`` for a generated task's name, URL-encoded (Digdag's)."""
    return urllib.parse.quote_plus(render_value(value)[:8], safe="*").replace("+", "%20")


def for_each(command: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    """One ``_do`` per combination of the values (the first key is the outer loop), named
    as Digdag names them: ``+for-0=fruit=1=orange&1=verb=0=eat``."""
    if isinstance(command, str):
        try:
            command = json.loads(command)
        except ValueError:
            raise EngineError(f"for_each>: must be a mapping of names to lists of values, got {command!r}") from None
    if not isinstance(command, Mapping) or not command:
        raise EngineError(f"for_each>: must be a mapping of names to lists of values, got {command!r}")
    names = list(command)
    lists = [_values(str(n), command[n]) for n in names]
    children = {}
    for positions in itertools.product(*(range(len(values)) for values in lists)):
        values = {name: lists[k][p] for k, (name, p) in enumerate(zip(names, positions, strict=True))}
        label = "&".join(f"{k}={name_tag(name)}={p}={name_tag(lists[k][p])}" for k, (name, p) in enumerate(zip(names, positions, strict=True)))
        children[f"+for-{label}"] = _with_export(body["_do"], values)
    return _group(body, children)


def _number(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise EngineError(f"for_range>: {key}: must be an integer, got {value!r}")
    try:
        return int(str(value).strip())
    except ValueError:
        raise EngineError(f"for_range>: {key}: must be an integer, got {value!r}") from None


def ranges(command: Mapping[str, Any]) -> Iterator[tuple[int, int]]:
    """``for_range>``'s ``(from, to)`` pairs: ``step`` wide, or ``slices`` of equal width."""
    start, end = _number("from", command.get("from")), _number("to", command.get("to"))
    if ("step" in command) == ("slices" in command):
        raise EngineError("for_range>: needs either step or slices")
    if "step" in command:
        step = _number("step", command["step"])
        if step <= 0:
            raise EngineError(f"for_range>: step: must be above 0, got {step}")
    else:
        slices = _number("slices", command["slices"])
        if slices <= 0:
            raise EngineError(f"for_range>: slices: must be above 0, got {slices}")
        step = max(1, (end - start + slices - 1) // slices)
    low = start
    while low < end:
        yield low, min(low + step, end)
        low += step


def for_range(command: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    """One ``_do`` per range, named ``+range-from=A&to=B``, with ``range: {from, to, index}`` exported."""
    if not isinstance(command, Mapping):
        raise EngineError(f"for_range>: must be a mapping with from, to and step or slices, got {command!r}")
    children = {
        f"+range-from={low}&to={high}": _with_export(body["_do"], {"range": {"from": low, "to": high, "index": i}})
        for i, (low, high) in enumerate(ranges(command))
    }
    return _group(body, children)


def loop(command: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    """``count`` times the ``_do``, named ``+loop-N``, with ``i`` exported (from 0)."""
    try:
        count = int(str(command).strip()) if not isinstance(command, bool) else -1
    except ValueError:
        count = -1
    if count < 0:
        raise EngineError(f"loop>: must be a count of iterations (0 or more), got {command!r}")
    return _group(body, {f"+loop-{i}": _with_export(body["_do"], {"i": i}) for i in range(count)})


def call_target(command: Any, workflow_dir: str, project_dir: str) -> str:
    """The workflow file ``call>`` names: relative to the calling file's directory, ``.dig``
    optional, inside the project."""
    path = str(command).strip()
    if not path.endswith(".dig"):
        path += ".dig"
    path = os.path.normpath(os.path.join(workflow_dir, path))
    if os.path.commonpath([path, os.path.abspath(project_dir)]) != os.path.abspath(project_dir):
        raise EngineError(f"call>: {command!r} is outside the project ({project_dir})")
    return path


def call(command: Any, workflow_dir: str, project_dir: str) -> dict[str, Any]:
    """The body of the workflow file ``command`` names (see :func:`call_target`)."""
    from offload.executor.errors import ConfigError
    from offload.workflow.parser import SESSION_KEYS, read_workflow_file

    path = call_target(command, workflow_dir, project_dir)
    try:
        data = read_workflow_file(path, project_dir)
    except ConfigError as e:
        raise EngineError("call>: " + "; ".join(str(p) for p in e.problems)) from None
    body = {k: v for k, v in data.items() if k not in SESSION_KEYS}
    where = os.path.relpath(os.path.dirname(path), workflow_dir)
    return body if where == "." else {"_workdir": where, **body}


def run_engine_operator(operator: str, command: Any, body: Mapping[str, Any], workflow_dir: str, project_dir: str) -> tuple[Result, list[str]]:
    """Run one engine operator (``command`` with its params substituted): the result and
    the lines for the task's log. A value the operator cannot use fails the task."""
    try:
        if operator == "echo>":
            return _done(TaskState.SUCCEEDED), render_value(command).splitlines() or [""]
        if operator == "fail>":
            return _done(TaskState.FAILED, render_value(command)), []
        if operator == "if>":
            key = "_do" if _truth(command) else "_else_do"
            branch = body.get(key)
            return _done(TaskState.SUCCEEDED, subtasks=dict(branch) if isinstance(branch, Mapping) else {}), []
        makers = {"for_each>": for_each, "for_range>": for_range, "loop>": loop}
        if operator in makers:
            return _done(TaskState.SUCCEEDED, subtasks=makers[operator](command, body)), []
        if operator == "call>":
            return _done(TaskState.SUCCEEDED, subtasks=call(command, workflow_dir, project_dir)), []
    except EngineError as e:
        return _done(TaskState.FAILED, str(e)), []
    return _done(TaskState.FAILED, f"{operator} is not an operator offload runs in its engine"), []

"""Digdag's ``error`` param: what a failed task's ``_error`` tasks see.

``${error.message}`` is the failure in Digdag's words: ``Command failed with code 1
(runtime)`` for a command that exited non-zero, ``Python command failed with code 1:
message (Class) (runtime)`` (``Ruby`` for ``rb>``) for an exception, the message itself
for ``fail>``. ``${error.stacktrace}`` is the task's own traceback where it gave one
(Digdag gives its Java frames there, which tell a workflow author nothing),
``${error.class}`` the exception's class, and ``${error.task_name}`` the task that
failed. A group's ``_error`` tasks see the errors of the tasks that failed under it,
merged in the order they are written (the last one wins), as in Digdag.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from offload.executor.models import Result, TaskState

if TYPE_CHECKING:
    from offload.workflow.nodes import Node

_EXIT = re.compile(r"(?:^|\b)(?:command )?exit(?:ed with)? code (\d+)$", re.I)


#: Digdag's suffix for an error that is not an operator's own (a Java RuntimeException).
RUNTIME = " (runtime)"
_LANGUAGES = {"py>": "Python", "rb>": "Ruby"}


def command_failed(result: Result) -> str | None:
    """Digdag's message for a command that exited non-zero (and nothing else went wrong)."""
    code = result.exit_code
    if code is None or code == 0 or result.error is None:
        return None
    match = _EXIT.search(result.error.strip())
    if match is None or int(match.group(1)) != code:
        return None
    return f"Command failed with code {code}"


def _reported(io_path: str | None) -> dict[str, Any] | None:
    """The ``error`` a ``py>``/``rb>`` task wrote in its ``output.json``."""
    if not io_path:
        return None
    try:
        with open(os.path.join(io_path, "output.json"), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def error_param(task_name: str, operator: str | None, result: Result | None, io_path: str | None = None) -> dict[str, Any]:
    """The ``error`` param for the failure of the operator task ``task_name``."""
    if result is None:
        return {"message": "a child task failed", "task_name": task_name}
    out: dict[str, Any] = {"task_name": task_name}
    reported = _reported(io_path) if operator in _LANGUAGES else None
    if reported is not None and reported.get("message") is not None:
        kind = reported.get("class")
        message = f"{reported['message']} ({kind})" if kind else str(reported["message"])
        out["message"] = f"{_LANGUAGES[str(operator)]} command failed with code {result.exit_code or 1}: {message}{RUNTIME}"
        if kind:
            out["class"] = str(kind)
        trace = reported.get("backtrace")
        if isinstance(trace, list) and trace:
            out["stacktrace"] = "\n".join(str(line).rstrip("\n") for line in trace)
        return out
    if operator == "fail>":
        out["message"] = result.error or ""
        return out
    plain = command_failed(result)
    out["message"] = plain + RUNTIME if plain else result.error or f"failed ({result.state.value})"
    return out


def merged_failure(nodes: Iterable[Node]) -> dict[str, Any] | None:
    """The errors of the failed ``nodes``, merged in order (the last one wins), as Digdag
    gives a group's ``_error`` tasks."""
    out: dict[str, Any] = {}
    for node in nodes:
        if node.finished and node.state is not TaskState.SUCCEEDED and node.failure:
            out.update(node.failure)
    return out or None


def summary(failure: dict[str, Any]) -> str:
    """The message of ``failure`` for offload's own event lines."""
    return str(failure.get("message") or "failed").removesuffix(RUNTIME)

"""What a ``py>`` task's code sees of its task: ``params``, ``store()``, ``export()``.

::

    import offload_env

    def step(table):
        offload_env.store(rows=count(table))      # visible to the following tasks
        offload_env.export({"table": table})      # visible to this task's children

The runner fills ``params`` before it calls the task and writes what was stored or exported
to ``output.json`` afterwards. The ``digdag`` module (``digdag.env``) shares this state, so
Digdag scripts run unchanged. Standard library only, Python 3.8+: this runs in the task's image.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # ``typing`` and ``collections.abc`` would add to every task's start
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeGuard

#: The task's params (the same dict object for the whole run).
params: dict[str, Any] = {}
#: The task's full name, like ``+flow+step``, when the driver gave it.
task_name: str | None = None

store_params: dict[str, Any] = {}
export_params: dict[str, Any] = {}
state_params: dict[str, Any] = {}
subtask_config: dict[str, Any] = {}


def start(new_params: Mapping[str, Any], name: str | None = None) -> None:
    """Set the task's params and forget any earlier output (the runner calls this)."""
    global task_name
    params.clear()
    params.update(new_params)
    task_name = name
    for collected in (store_params, export_params, state_params, subtask_config):
        collected.clear()


def _merge(target: dict[str, Any], what: str, values: Mapping[str, Any] | None, kw: Mapping[str, Any]) -> None:
    """Merge after checking every value can go to ``output.json``.

    Checking here fails the call in the task's code, with its traceback, rather than after
    the task has finished.
    """
    merged: dict[str, Any] = {}
    if values is not None:
        if not _is_mapping(values):
            raise TypeError(f"{what}() takes a dict of params, got {type(values).__name__}")
        merged.update(values)
    merged.update(kw)
    for key, value in merged.items():
        if not isinstance(key, str):
            raise TypeError(f"{what}(): param names must be strings, got {key!r}")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{what}(): value of {key!r} can not be written as JSON: {e}") from None
    target.update(merged)


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    """A dict, or an object that ``dict.update`` takes as a mapping (``keys()`` and ``[]``)."""
    return isinstance(value, dict) or (hasattr(value, "keys") and hasattr(value, "__getitem__"))


def store(values: Mapping[str, Any] | None = None, /, **kw: Any) -> None:
    """Store params for the tasks that run after this one (Digdag's ``store``)."""
    _merge(store_params, "store", values, kw)


def export(values: Mapping[str, Any] | None = None, /, **kw: Any) -> None:
    """Export params to this task's subtasks (Digdag's ``export``)."""
    _merge(export_params, "export", values, kw)


def set_state(values: Mapping[str, Any] | None = None, /, **kw: Any) -> None:
    """Digdag's state for retries; kept for compatibility, not written to ``output.json``."""
    _merge(state_params, "set_state", values, kw)


def add_subtask(function: Callable[..., Any] | Mapping[str, Any] | None = None, /, **config: Any) -> None:
    """Record a subtask as Digdag does: a function (becomes ``py>: module.name``) or a config dict."""
    if function is not None and not _is_mapping(function):
        owner = getattr(function, "__self__", None)
        module = getattr(function, "__module__", None) or getattr(owner, "__module__", "")
        name = getattr(function, "__qualname__", None) or getattr(function, "__name__", "")
        entry: dict[str, Any] = dict(config)
        entry["py>"] = f"{module}.{name}"
    else:
        entry = dict(function or {})
        entry.update(config)
    try:
        json.dumps(entry, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Parameters must be serializable using JSON: {e}") from None
    subtask_config[f"+subtask{len(subtask_config)}"] = entry


def output(error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``output.json``; a failed task's params are dropped, as Digdag does."""
    if error is not None:
        return {"store_params": {}, "export_params": {}, "subtask_config": {}, "error": dict(error)}
    return {"store_params": store_params, "export_params": export_params, "subtask_config": subtask_config}

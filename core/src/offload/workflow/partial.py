"""Running part of a workflow, as ``digdag run --start`` and ``--goal`` do.

``--start +task`` skips every task written before ``+task`` (its ancestors excepted: they
are the groups it runs in); ``--goal +task`` skips every task written after it (its
ancestors and the tasks under it excepted). A skipped task counts as succeeded and
stores nothing. Names are written as in Digdag, from the workflow down (``+step`` or
``+group+step``); the workflow's own ``+name`` may lead.
"""

from __future__ import annotations

from offload.executor.errors import UsageError
from offload.workflow.parser import Task, Workflow


def _in_order(root: Task) -> list[Task]:
    """The tasks of the workflow file, in the order they are written (no ``_error``/``_check``)."""
    out = [root]
    for child in root.children:
        out.extend(_in_order(child))
    return out


def resolve(workflow: Workflow, name: str, flag: str) -> Task:
    """The task ``name`` names; :class:`UsageError` with the names there are."""
    tasks = _in_order(workflow.root)
    root = workflow.root.name
    wanted = name if name.startswith(root + "+") or name == root else root + (name if name.startswith("+") else "+" + name)
    for task in tasks:
        if task.name == wanted:
            return task
    names = ", ".join(t.name[len(root) :] for t in tasks[1:21])
    raise UsageError(f"{flag} {name}: no such task in {workflow.name} (tasks: {names}{', ...' if len(tasks) > 21 else ''})")


def skipped(workflow: Workflow, start: str | None, goal: str | None) -> set[str]:
    """The names of the tasks ``--start``/``--goal`` leave out (whole subtrees)."""
    tasks = _in_order(workflow.root)
    position = {t.name: i for i, t in enumerate(tasks)}
    out: set[str] = set()
    if start is not None:
        first = resolve(workflow, start, "--start")
        out.update(t.name for t in tasks[: position[first.name]] if not first.name.startswith(t.name + "+"))
    if goal is not None:
        last = resolve(workflow, goal, "--goal")
        out.update(t.name for t in tasks[position[last.name] + 1 :] if not t.name.startswith(last.name + "+"))
    if start is not None and goal is not None and position[resolve(workflow, start, "--start").name] > position[resolve(workflow, goal, "--goal").name]:
        raise UsageError(f"--start {start} comes after --goal {goal}: nothing would run")
    return out

"""The tree a run walks: one :class:`Node` per task of the workflow, with its state.

A task runs in phases: its body (the operator, or the ``+children``), then the subtasks
it generated (``^sub``: ``add_subtask`` or an engine operator), then its ``_check``
(``^check``). It succeeds when the last phase does; a failure in any phase is the
task's failure (retried by ``_retry``, handed to ``_error``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

import attrs

from offload.executor.errors import OffloadError
from offload.executor.models import Handle, Result, TaskState
from offload.workflow.params import UnknownParam
from offload.workflow.parser import Task
from offload.workflow.plan import deep_merge


class Phase(enum.Enum):
    BODY = "body"
    SUB = "sub"
    CHECK = "check"


@attrs.define(eq=False)
class Node:
    task: Task
    children: list[Node]
    state: TaskState = TaskState.PENDING
    phase: Phase = Phase.BODY
    tries: int = 0
    attempt: int = 0
    #: may take its outcome from the journal (a run resumed); not after a retry in this run
    reuse_journal: bool = True
    #: its outcome came from the journal, so the tasks it generated may too
    replayed: bool = False
    handle: Handle | None = None
    backend: str | None = None
    result: Result | None = None
    sub_node: Node | None = None
    check_node: Node | None = None
    error_node: Node | None = None
    #: Digdag's ``error`` param for this task's ``_error`` tasks, set when it failed
    failure: dict[str, Any] | None = None
    #: what the task's operator exported: params of its subtasks, not of its siblings
    exports: dict[str, Any] = attrs.field(factory=dict)
    #: what the task's operator stored (its subtasks' stores are in their nodes)
    stored: dict[str, Any] = attrs.field(factory=dict)
    #: the io directory of its latest submission (``output.json`` tells how it failed)
    io_path: str | None = None
    #: for each child, the children it waits for (:func:`upstreams`)
    upstreams: list[tuple[int, ...]] = attrs.field(factory=list)
    #: ``time.monotonic()`` before which a retried task waits (``_retry.interval``)
    not_before: float = 0.0
    #: how many children, from the first, are finished (the walk starts after them)
    done: int = 0
    #: for each child that started, the stores it saw of its siblings (:func:`stores_before`)
    seen_stores: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    #: the children that are ``_background`` (they wait for no sibling)
    background: tuple[int, ...] = ()
    #: each child's place among the children, by task name
    child_index: dict[str, int] = attrs.field(factory=dict)

    @property
    def finished(self) -> bool:
        return self.state.finished

    @property
    def active(self) -> bool:
        """Started and not finished (a task waiting to be retried counts)."""
        return not self.finished and (self.state is not TaskState.PENDING or self.tries > 0)

    def reset(self) -> None:
        """Back to pending, for a retry: what it and its subtree did is forgotten."""
        self.state, self.phase, self.handle, self.result = TaskState.PENDING, Phase.BODY, None, None
        self.sub_node = self.check_node = self.error_node = None
        self.failure, self.exports, self.stored, self.io_path = None, {}, {}, None
        self.reuse_journal = self.replayed = False
        self.done, self.seen_stores = 0, {}
        for child in self.children:
            child.reset()
            child.tries = 0

    def parts(self) -> Iterator[Node]:
        """The nodes under this one that exist now, in the order they run."""
        yield from self.children
        for part in (self.sub_node, self.check_node, self.error_node):
            if part is not None:
                yield part

    def operator_nodes(self) -> list[Node]:
        out = [] if self.task.is_group else [self]
        for part in self.parts():
            out.extend(part.operator_nodes())
        return out


def build_tree(task: Task, reuse_journal: bool = True) -> Node:
    node = Node(task, [build_tree(child, reuse_journal) for child in task.children], reuse_journal=reuse_journal)
    node.upstreams = upstreams(task)
    node.background = tuple(i for i, child in enumerate(task.children) if child.background)
    node.child_index = {child.name: i for i, child in enumerate(task.children)}
    return node


def upstreams(task: Task) -> list[tuple[int, ...]]:
    """For each child of ``task``, the children it waits for, as Digdag compiles a group.

    In order, each child waits for the one before it and for the ``_background``
    children just before that (a ``_background`` child waits for nothing: it runs
    alongside the tasks before it). Under ``_parallel`` a child waits only for the
    siblings its ``_after`` names; with ``_parallel: {limit: N}`` the children run in
    batches of N, each batch after the whole batch before it."""
    count = len(task.children)
    if task.parallel.enabled:
        limit = task.parallel.limit or count or 1
        index = {child.name[len(task.name) :]: i for i, child in enumerate(task.children)}
        return [
            tuple(sorted({*range(max(0, (i // limit - 1) * limit), (i // limit) * limit), *(index[a] for a in child.after if a in index)}))
            for i, child in enumerate(task.children)
        ]
    out: list[tuple[int, ...]] = []
    before: list[int] = []
    for i, child in enumerate(task.children):
        if child.background:
            out.append(())
            before.append(i)
        else:
            out.append(tuple(before))
            before = [i]
    return out


def upstream_closure(node: Node, index: int) -> list[int]:
    """Every child of ``node`` that child ``index`` waits for, directly or not, in order."""
    seen: set[int] = set()
    todo = list(node.upstreams[index])
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(node.upstreams[i])
    return sorted(seen)


def store_of(node: Node) -> dict[str, Any]:
    """Everything ``node`` and the tasks under it stored, merged in the order the tasks
    are written (not the order they finished), as Digdag merges them."""
    out = dict(node.stored)
    for part in node.parts():
        if part is not node.error_node:
            out = deep_merge(out, store_of(part))
    return out


def stores_before(parent: Node, child: Node) -> dict[str, Any]:
    """What ``child`` sees of the stores made under ``parent`` before it runs: those of
    the siblings it waits for (:func:`upstreams`), in the order they are written; the
    task's own store for its subtasks and ``_check``; everything that ran under it for
    its ``_error`` tasks."""
    index = parent.child_index.get(child.task.name)
    if index is not None and parent.children[index] is child:
        return _sibling_stores(parent, index)
    out = dict(parent.stored)
    for part in parent.parts():
        if part is child:
            break
        if part is not parent.error_node:
            out = deep_merge(out, store_of(part))
    return out


def _sibling_stores(parent: Node, index: int) -> dict[str, Any]:
    """The stores child ``index`` of ``parent`` sees: those of every sibling it waits
    for, merged in written order. Kept per child, because a child that waits only for
    the one before it sees what that one saw plus that one's store: a sequence of N
    tasks costs N merges, not N²/2. The siblings a child waits for have all finished
    when it starts, so what is kept stays true until the group is retried (``reset``)."""
    if index in parent.seen_stores:
        return parent.seen_stores[index]
    before = index - 1
    if parent.upstreams[index] == (before,) and before in parent.seen_stores:
        out = deep_merge(parent.seen_stores[before], store_of(parent.children[before]))
    else:
        out = {}
        for i in upstream_closure(parent, index):
            out = deep_merge(out, store_of(parent.children[i]))
    parent.seen_stores[index] = out
    return out


def describe(error: BaseException) -> str:
    """A one-line reason: offload's own errors as they are, others with their type."""
    if isinstance(error, (OffloadError, UnknownParam)):
        return str(error)
    return f"{type(error).__name__}: {error}"

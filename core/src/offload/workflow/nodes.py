"""The tree a run walks: one :class:`Node` per task of the workflow, with its state."""

from __future__ import annotations

from typing import Any

import attrs

from offload.executor.errors import OffloadError
from offload.executor.models import Handle, Result, TaskState
from offload.workflow.params import UnknownParam
from offload.workflow.parser import Task


@attrs.define(eq=False)
class Node:
    task: Task
    children: list[Node]
    state: TaskState = TaskState.PENDING
    tries: int = 0
    attempt: int = 0
    reuse_journal: bool = True
    handle: Handle | None = None
    backend: str | None = None
    result: Result | None = None
    error_node: Node | None = None
    error_info: dict[str, Any] | None = None
    exports: dict[str, Any] = attrs.field(factory=dict)

    @property
    def finished(self) -> bool:
        return self.state.finished

    def reset(self) -> None:
        self.state, self.handle, self.result, self.error_node, self.exports = TaskState.PENDING, None, None, None, {}
        self.reuse_journal = False
        for child in self.children:
            child.reset()
            child.tries = 0

    def operator_nodes(self) -> list[Node]:
        out = [] if self.task.children else [self]
        for child in self.children:
            out.extend(child.operator_nodes())
        if self.error_node is not None:
            out.extend(self.error_node.operator_nodes())
        return out


def build_tree(task: Task) -> Node:
    return Node(task, [build_tree(child) for child in task.children])


def describe(error: BaseException) -> str:
    """A one-line reason: offload's own errors as they are, others with their type."""
    if isinstance(error, (OffloadError, UnknownParam)):
        return str(error)
    return f"{type(error).__name__}: {error}"

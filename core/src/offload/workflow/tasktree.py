"""Walking a run's tree of tasks: what may start, and what a finished phase leads to.

:class:`TaskTree` holds the workflow's :class:`Node` tree and its rules: children in
order (a ``_background`` child does not hold back the next) or at once under
``_parallel`` (at most ``limit``), a task's generated subtasks and ``_check`` after it,
``_retry`` with its interval, ``_error`` tasks with Digdag's ``error`` param, and the
params each task sees (exports of its ancestors, stores of the tasks before it, merged
in the order they are written). Starting an operator task is the runner's
(:meth:`TaskTree.start`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import attrs

from offload.executor.errors import ConfigError
from offload.executor.models import Result, TaskState
from offload.workflow.failures import error_param, merged_failure, summary
from offload.workflow.nodes import Node, Phase, build_tree, stores_before
from offload.workflow.params import references
from offload.workflow.parser import Workflow, parse_body
from offload.workflow.plan import Stored, Verbatim, deep_merge, layered_params

#: The backend shown for a task that ``--start``/``--goal`` left out.
SKIPPED = "skipped"


class TaskTree:
    """The tree of a run's tasks and the rules that move it on."""

    def __init__(self, workflow: Workflow, session: dict[str, Any], on_event: Callable[[str, str], None]) -> None:
        self.workflow, self.session, self.on_event = workflow, session, on_event
        self.source = workflow.path.rsplit("/", 1)[-1]
        self.root = build_tree(workflow.root)
        self.parents: dict[Node, Node] = {}
        self._index_parents(self.root)
        self.cancelling = False
        #: when the next task waiting for its retry may start (``time.monotonic()``)
        self.wake_at = float("inf")
        #: names of the tasks ``--start``/``--goal`` leave out (:mod:`offload.workflow.partial`)
        self.skip: set[str] = set()

    def start(self, node: Node) -> None:
        """Start an operator task (the runner's part)."""
        raise NotImplementedError

    def _index_parents(self, node: Node) -> None:
        for child in node.children:
            self.parents[child] = node
            self._index_parents(child)
        for part in (node.sub_node, node.check_node, node.error_node):
            if part is not None:
                self.parents[part] = node
                self._index_parents(part)

    # -- walking the tree --------------------------------------------------------
    def advance(self, node: Node) -> None:
        if node.finished:
            return
        if node.error_node is not None:
            self.advance(node.error_node)
            if node.error_node.finished:
                node.state = TaskState.FAILED
            return
        if node.state is TaskState.PENDING and node.task.name in self.skip:
            self._skip(node)
            return
        if node.state is TaskState.PENDING and node.not_before > time.monotonic():
            self.wake_at = min(self.wake_at, node.not_before)  # waiting for its retry
            return
        if node.phase is not Phase.BODY:
            part = node.sub_node if node.phase is Phase.SUB else node.check_node
            assert part is not None
            self.advance(part)
            if part.finished:
                self.finish(node, part.state, failure=merged_failure([part]))
            return
        if not node.task.is_group:
            if node.state is TaskState.PENDING:
                self.start(node)
            return
        node.state = TaskState.RUNNING
        outcome = self._advance_children(node)
        if outcome is not None:
            self.finish(node, outcome, failure=merged_failure(node.children))

    def _skip(self, node: Node) -> None:
        """Count a task left out by ``--start``/``--goal`` (and the tasks under it) as succeeded."""
        node.state, node.backend = TaskState.SUCCEEDED, SKIPPED
        if not node.task.is_group:
            self.on_event(node.task.name, "skipped (outside --start/--goal)")
        for child in node.children:
            self._skip(child)

    def _advance_children(self, node: Node) -> TaskState | None:
        """Start every child whose upstream tasks succeeded (:func:`~offload.workflow.nodes.upstreams`);
        the group's outcome once nothing under it runs or can start."""
        children = node.children
        while node.done < len(children) and children[node.done].finished:
            node.done += 1
        sequence = not node.task.parallel.enabled
        active = False
        blocked = len(children)  # in a sequence, the first child every later one waits for
        for index in range(node.done, len(children)):
            child = children[index]
            if index > blocked and not child.task.background:
                continue
            if not child.finished and (child.active or all(children[i].state is TaskState.SUCCEEDED for i in node.upstreams[index])):
                self.advance(child)
            active = active or child.active
            if sequence and not child.finished and not child.task.background and blocked == len(children):
                blocked = index
                if not node.background or node.background[-1] < index:
                    break  # no _background child after it: nothing more can start
        if active:
            return None
        # nothing runs: a child still pending waits for one that failed
        return TaskState.SUCCEEDED if all(c.state is TaskState.SUCCEEDED for c in children) else TaskState.FAILED

    def finish(self, node: Node, outcome: TaskState, result: Result | None = None, quiet: bool = False, failure: dict[str, Any] | None = None) -> None:
        """Record the outcome of a phase of a task: go on to its next phase, retry it,
        hand it to ``_error``, or settle it."""
        if outcome is TaskState.SUCCEEDED:
            if result is not None:
                node.stored, node.exports = dict(result.store_params), dict(result.export_params)
                if not node.task.is_group and not quiet:
                    self.on_event(node.task.name, "succeeded")
            if self._next_phase(node, result):
                return
            node.tries += 1
            node.state = TaskState.SUCCEEDED
            return
        node.tries += 1
        if outcome is TaskState.CANCELLED or self.cancelling:
            node.state = TaskState.CANCELLED
            return
        node.failure = failure or error_param(node.task.name, node.task.operator, result, node.io_path)
        message = summary(node.failure)
        if node.tries <= node.task.retry.limit:
            delay = node.task.retry.delay(node.tries)
            wait = f" in {delay:g}s" if delay else ""
            self.on_event(node.task.name, f"failed ({message}); retry {node.tries} of {node.task.retry.limit}{wait}")
            tries = node.tries
            node.reset()
            node.tries, node.not_before = tries, time.monotonic() + delay
            return
        if node.task.error is not None and node.error_node is None:
            self.on_event(node.task.name, f"failed ({message}); running its _error tasks")
            node.error_node = build_tree(node.task.error, self._reusable(node))
            self._index_parents(node)
            self.advance(node.error_node)
            return
        node.state = TaskState.FAILED
        if not node.task.is_group and result is not None:
            self.on_event(node.task.name, f"failed: {message}")

    def _next_phase(self, node: Node, result: Result | None) -> bool:
        """Start the task's generated subtasks, then its ``_check``; ``False`` when none is left."""
        if node.phase is Phase.BODY and result is not None and result.subtask_config:
            try:
                node.sub_node = build_tree(
                    parse_body(f"{node.task.name}^sub", dict(result.subtask_config), self.source, node.task.origin), self._reusable(node)
                )
            except ConfigError as e:
                self.finish(node, TaskState.FAILED, attrs.evolve(result, state=TaskState.FAILED, error=f"its subtasks cannot run: {e}"))
                return True
            node.phase, node.state = Phase.SUB, TaskState.RUNNING
            self._index_parents(node)
            return True
        if node.phase is not Phase.CHECK and node.task.check is not None:
            node.check_node = build_tree(node.task.check, self._reusable(node))
            node.phase, node.state = Phase.CHECK, TaskState.RUNNING
            self._index_parents(node)
            return True
        return False

    @staticmethod
    def _reusable(node: Node) -> bool:
        """Whether the tasks ``node`` generates may take their outcome from the journal."""
        return node.reuse_journal if node.task.is_group else node.replayed

    def params_for(self, node: Node) -> dict[str, Any]:
        chain_nodes = self._node_chain(node)
        layers: list[dict[str, Any]] = [self.session]
        for parent, child in itertools.pairwise(chain_nodes):
            layers.append(parent.task.export)
            layers.append(Verbatim(parent.exports))
            if child is parent.error_node and parent.failure is not None:
                layers.append(Verbatim({"error": parent.failure}))
        layers += [node.task.export, Stored(self._stored_for(chain_nodes)), {"task_name": node.task.name}, node.task.params]
        return layered_params(layers)

    def _stored_for(self, chain_nodes: list[Node]) -> dict[str, Any]:
        """The stored params the last node of ``chain_nodes`` (root first) sees."""
        stored: dict[str, Any] = {}
        for parent, child in itertools.pairwise(chain_nodes):
            stored = deep_merge(stored, stores_before(parent, child))
        return stored

    def _names_from_tasks(self, node: Node) -> set[str]:
        """Params of ``node`` whose values tasks produced (see :mod:`offload.workflow.shellparams`)."""
        names = {"error", *self._stored_for(self._node_chain(node))}
        for n in self._node_chain(node)[:-1]:
            names.update(n.exports)
        carrying = {k for k, v in node.task.params.items() if not names.isdisjoint(references(v))}
        return (names - set(node.task.params)) | carrying

    def _node_chain(self, node: Node) -> list[Node]:
        chain = [node]
        while chain[-1] in self.parents:
            chain.append(self.parents[chain[-1]])
        return list(reversed(chain))

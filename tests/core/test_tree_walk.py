"""The walk of a run's task tree (:class:`~offload.workflow.tasktree.TaskTree`): which
tasks start when, in written order, and that a step of a long sequence looks at a few
tasks, not at the whole sequence (it used to: a chain of N tasks cost N²/2 visits)."""

from __future__ import annotations

from typing import Any

import pytest

from offload.executor.models import Result, TaskState
from offload.workflow.nodes import Node
from offload.workflow.parser import parse_workflow
from offload.workflow.tasktree import TaskTree


class Recording(TaskTree):
    """A tree whose operator tasks only record that they started; the test finishes them."""

    def __init__(self, text: str) -> None:
        super().__init__(parse_workflow(text, "/p/flow.dig"), {}, lambda name, message: None)
        self.started: list[str] = []
        self.visits = 0

    def start(self, node: Node) -> None:
        node.state = TaskState.RUNNING
        self.started.append(node.task.name.removeprefix("+flow"))

    def advance(self, node: Node) -> None:
        self.visits += 1
        super().advance(node)

    def node(self, name: str) -> Node:
        return next(n for n in self.root.operator_nodes() if n.task.name == "+flow" + name)

    def end(self, name: str, state: TaskState = TaskState.SUCCEEDED, **stored: Any) -> None:
        self.finish(self.node(name), state, Result(state=state, exit_code=0 if state is TaskState.SUCCEEDED else 1, store_params=stored))
        self.advance(self.root)


def test_a_sequence_starts_each_task_after_the_one_before() -> None:
    tree = Recording("+a: {sh>: x}\n+b: {sh>: x}\n+c: {sh>: x}\n")
    tree.advance(tree.root)
    assert tree.started == ["+a"]
    tree.end("+a")
    tree.end("+b")
    assert tree.started == ["+a", "+b", "+c"]
    tree.end("+c")
    assert tree.root.state is TaskState.SUCCEEDED


def test_background_tasks_start_at_once_in_written_order_and_the_next_waits_for_them() -> None:
    tree = Recording("+a: {sh>: x}\n+b: {sh>: x, _background: true}\n+c: {sh>: x}\n+d: {sh>: x, _background: true}\n+e: {sh>: x}\n")
    tree.advance(tree.root)
    assert tree.started == ["+a", "+b", "+d"]  # a background task runs alongside the ones before it
    tree.end("+a")
    assert tree.started == ["+a", "+b", "+d"]  # +c waits for +a and the background +b
    tree.end("+b")
    assert tree.started == ["+a", "+b", "+d", "+c"]
    tree.end("+c")
    assert tree.started == ["+a", "+b", "+d", "+c"]  # +e waits for +c and +d
    tree.end("+d")
    assert tree.started == ["+a", "+b", "+d", "+c", "+e"]
    tree.end("+e")
    assert tree.root.state is TaskState.SUCCEEDED


def test_a_failed_task_stops_the_sequence_and_fails_the_group_once_nothing_runs() -> None:
    tree = Recording("+a: {sh>: x}\n+b: {sh>: x}\n+c: {sh>: x, _background: true}\n")
    tree.advance(tree.root)
    assert tree.started == ["+a", "+c"]
    tree.end("+a", TaskState.FAILED)
    assert tree.root.state.value == "running"  # +c still runs
    tree.end("+c")
    assert tree.started == ["+a", "+c"]
    assert tree.root.state is TaskState.FAILED


def test_a_retried_group_walks_its_children_again_from_the_first() -> None:
    tree = Recording("+g:\n  _retry: 1\n  +a: {sh>: x}\n  +b: {sh>: x}\n")
    tree.advance(tree.root)
    tree.end("+g+a")
    tree.end("+g+b", TaskState.FAILED)
    tree.advance(tree.root)  # the run's loop walks the tree again at once
    assert tree.started == ["+g+a", "+g+b", "+g+a"]
    tree.end("+g+a")
    tree.end("+g+b")
    assert tree.root.state is TaskState.SUCCEEDED


def test_each_task_sees_the_stores_of_the_tasks_before_it_merged_in_order() -> None:
    tree = Recording("+a: {sh>: x}\n+b: {sh>: x}\n+c: {sh>: x}\n")
    tree.advance(tree.root)
    tree.end("+a", n=1, only_a={"k": 1})
    assert tree.params_for(tree.node("+b"))["n"] == 1
    tree.end("+b", n=2, only_a={"j": 2})
    params = tree.params_for(tree.node("+c"))
    assert params["n"] == 2 and params["only_a"] == {"k": 1, "j": 2}


def test_a_step_of_a_long_sequence_visits_a_few_tasks_not_all_of_them(monkeypatch: pytest.MonkeyPatch) -> None:
    looks = 0
    active = Node.__dict__["active"].fget

    def counted(node: Node) -> bool:
        nonlocal looks
        looks += 1
        return bool(active(node))

    monkeypatch.setattr(Node, "active", property(counted))
    count = 1000
    tree = Recording("".join(f"+t{i}: {{sh>: x}}\n" for i in range(count)))
    tree.advance(tree.root)
    for i in range(count - 1):
        tree.visits = looks = 0
        tree.end(f"+t{i}")
        assert tree.visits <= 3 and looks <= 6, f"step {i} visited {tree.visits} tasks and looked at {looks}"
    tree.end(f"+t{count - 1}")
    assert tree.root.state is TaskState.SUCCEEDED and len(tree.started) == count

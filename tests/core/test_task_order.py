"""Unit tests of the intricate parts of Digdag's task order: which children wait for which
(``_background``, ``_parallel: {limit}``), and the ranges of ``for_range>``."""

from __future__ import annotations

import re

import pytest

from offload.executor.errors import ConfigError
from offload.workflow.directives import RetryPolicy, parse_retry
from offload.workflow.engineops import EngineError, name_tag, ranges
from offload.workflow.nodes import upstreams
from offload.workflow.parser import parse_body


def order(body: str) -> list[tuple[int, ...]]:
    import yaml

    return upstreams(parse_body("+w", yaml.safe_load(body), "w.dig", "/p"))


def test_in_order_each_child_waits_for_the_one_before() -> None:
    assert order("+a: {sh>: x}\n+b: {sh>: x}\n+c: {sh>: x}\n") == [(), (0,), (1,)]


def test_a_background_child_waits_for_nothing_and_the_next_waits_for_it_too() -> None:
    body = "+a: {sh>: x}\n+b: {sh>: x, _background: true}\n+c: {sh>: x}\n+d: {sh>: x}\n"
    assert order(body) == [(), (), (0, 1), (2,)]


def test_parallel_children_wait_for_nothing_and_a_limit_makes_batches() -> None:
    children = "".join(f"+t{i}: {{sh>: x}}\n" for i in range(5))
    assert order("_parallel: true\n" + children) == [()] * 5
    assert order("_parallel: {limit: 2}\n" + children) == [(), (), (0, 1), (0, 1), (2, 3)]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ({"from": 0, "to": 10, "slices": 3}, [(0, 4), (4, 8), (8, 10)]),
        ({"from": 0, "to": 10, "step": 5}, [(0, 5), (5, 10)]),
        ({"from": 3, "to": 3, "step": 1}, []),
        ({"from": "1", "to": "4", "step": "2"}, [(1, 3), (3, 4)]),
    ],
)
def test_for_range_splits_as_digdag_does(command: dict[str, object], expected: list[tuple[int, int]]) -> None:
    assert list(ranges(command)) == expected


@pytest.mark.parametrize("command", [{"from": 0, "to": 3}, {"from": 0, "to": 3, "step": 1, "slices": 2}, {"from": 0, "to": 3, "step": 0}])
def test_for_range_needs_one_positive_step_or_slices(command: dict[str, object]) -> None:
    with pytest.raises(EngineError):
        list(ranges(command))


def test_name_tags_are_short_and_url_encoded() -> None:
    assert name_tag("apple pie with cream") == "apple%20pi"
    assert name_tag(3) == "3"


def test_retry_intervals() -> None:
    problems: list[tuple[str, str]] = []
    policy = parse_retry({"limit": 3, "interval": 10, "interval_type": "exponential", "max_interval": 25}, lambda k, m: problems.append((k, m)))
    assert problems == []
    assert [policy.delay(n) for n in (1, 2, 3)] == [10, 20, 25]
    assert RetryPolicy(limit=2, interval=5).delay(2) == 5


def test_after_makes_a_parallel_child_wait_for_the_siblings_it_names() -> None:
    body = "_parallel: true\n+a: {sh>: x}\n+b: {sh>: x}\n+c: {sh>: x, _after: [+a, b]}\n+d: {sh>: x, _after: +c}\n"
    assert order(body) == [(), (), (0, 1), (2,)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("+a: {sh>: x}\n+b: {sh>: x, _after: +a}\n", "is only for a child of a group with _parallel: true"),
        ("_parallel: true\n+a: {sh>: x, _after: +b}\n+b: {sh>: x}\n", "'+b' is not a sibling written before this task"),
    ],
)
def test_after_is_checked(body: str, message: str) -> None:
    import yaml

    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_body("+w", yaml.safe_load(body), "w.dig", "/p")

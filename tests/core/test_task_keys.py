"""Task keys name io directories and containers: different tasks never share one."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from offload.workflow.taskkeys import MAX_LITERAL, task_key

SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def test_names_that_a_slug_would_merge_get_different_keys() -> None:
    names = ["+f+load_data", "+f+load+data", "+f+x:y", "+f+x;y", "+f+x_y", "+f+x y", "+f+x^error", "+f+x_5e"]
    keys = [task_key(n) for n in names]
    assert len(set(keys)) == len(keys)
    assert all(SAFE.match(k) for k in keys)
    assert task_key("+flow+load_data") == "flow.load_5fdata"


@given(st.lists(st.text(min_size=1, max_size=200), min_size=2, max_size=5, unique=True))
def test_keys_are_injective_and_safe(tails: list[str]) -> None:
    keys = [task_key("+" + t) for t in tails]
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert SAFE.match(key)
        assert len(key) <= MAX_LITERAL + 2


def test_long_names_keep_distinct_keys_of_bounded_length() -> None:
    a, b = "+" + "x" * 300 + "a", "+" + "x" * 300 + "b"
    assert task_key(a) != task_key(b)
    assert len(task_key(a)) == MAX_LITERAL + 2
    assert task_key(a) == task_key(a)

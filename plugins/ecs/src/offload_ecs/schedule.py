"""When to describe a task: a due-time schedule that staggers quiet tasks and bounds the
work of one poll (logs are read in bulk, see :mod:`.logs`).

A task that shows no change waits longer and longer before it is looked at again
(``FIRST_WAIT``, twice that, ... up to ``MAX_WAIT``). Its due time does not fall at
"now + wait", where a thousand tasks submitted together would stay in lockstep and be
due in the same poll, but on the task's own phase within a grid of that wait (from a
hash of its ARN or log stream): tasks that wait alike are spread evenly over the wait,
so each poll describes about ``tasks x poll interval / wait`` of them.

One poll describes every task that must be (stopping, cancelled, timed out, end-of-log
marker seen, or not described for ``MAX_WAIT`` seconds: the latency bound), and of the
others that are due at most ``DESCRIBES_PER_POLL`` (never fewer than one batch), the
most recently changed first.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: A task that shows no change is described after this, then twice as late each time...
FIRST_WAIT = 0.25
#: ...up to this; a running task is described at least this often (plus one poll interval).
MAX_WAIT = 8.0
#: Tasks described per poll beyond those that must be (1,000 quiet tasks polled every 2 s need 250).
DESCRIBES_PER_POLL = 250
#: However many tasks must be described, this many of the due ones are too, so recently
#: changed tasks are never starved by a large number of quiet ones.
MIN_DUE_DESCRIBES = 100


def phase(key: str) -> float:
    """A stable fraction in [0, 1) for ``key``: the same after a driver restart."""
    return (zlib.crc32(key.encode()) & 0xFFFFFF) / float(1 << 24)


def backoff(quiet: int, first: float = FIRST_WAIT, ceiling: float = MAX_WAIT) -> float:
    """The wait after ``quiet`` looks in a row that showed no change (0: none)."""
    return 0.0 if quiet <= 0 else min(ceiling, first * 2 ** (quiet - 1))


def staggered(key: str, wait: float, now: float) -> float:
    """The first time after ``now`` and at most ``wait`` later that falls on ``key``'s phase.

    Keys that wait alike are spread evenly over any stretch of ``wait`` seconds, whenever
    they were last looked at; the wait is never longer than asked.
    """
    if wait <= 0:
        return now
    offset = (phase(key) * wait - now) % wait
    return now + (offset if offset > 0 else wait)


def after_describe(state: dict[str, Any], now: float, changed: bool) -> None:
    """Record a describe of the task in ``state``: when it is due next."""
    quiet = 0 if changed else int(state.get("describe_quiet") or 0) + 1
    state["describe_quiet"] = quiet
    state["described_at"] = now
    state["describe_due"] = staggered(str(state.get("task_arn")), backoff(quiet), now)


def last_described(state: Mapping[str, Any]) -> float:
    seen = state.get("described_at")
    return float(seen if seen is not None else state.get("submitted_at") or 0.0)


def pick_describes(
    states: Iterable[tuple[int, Mapping[str, Any]]],
    now: float,
    urgent: Callable[[Mapping[str, Any]], bool],
    budget: int = DESCRIBES_PER_POLL,
) -> list[int]:
    """The indexes of the started tasks to describe in this poll.

    Every task for which ``urgent`` holds or that has not been described for ``MAX_WAIT``
    seconds; then the due ones, never described first, then by how recently they changed
    (fewest quiet describes) and how long they have been due, up to ``budget`` in all
    (at least ``MIN_DUE_DESCRIBES`` of them).
    """
    must: list[int] = []
    due: list[tuple[int, float, int]] = []
    for index, state in states:
        if not state.get("task_arn"):
            continue
        if urgent(state) or now - last_described(state) >= MAX_WAIT:
            must.append(index)
            continue
        when = state.get("describe_due")
        if when is None:  # never described: first
            due.append((-1, 0.0, index))
        elif float(when) <= now:
            due.append((int(state.get("describe_quiet") or 0), float(when), index))
    room = max(budget - len(must), MIN_DUE_DESCRIBES)
    if len(due) > room:
        due.sort()
        del due[room:]
    return must + [index for _, _, index in due]

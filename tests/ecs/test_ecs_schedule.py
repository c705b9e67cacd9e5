"""The describe schedule: quiet tasks are staggered, one poll's work is bounded,
recently changed tasks come first, and no running task goes undescribed past the bound."""

from __future__ import annotations

from collections import Counter
from typing import Any

from offload_ecs import schedule

ARNS = [f"arn:aws:ecs:us-east-1:123456789012:task/c/{i:032x}" for i in range(1000)]


def _never(state: Any) -> bool:
    return False


def test_staggered_due_times_fall_within_the_wait_and_spread_evenly() -> None:
    now = 1_000_000.0
    dues = [schedule.staggered(arn, 8.0, now) for arn in ARNS]
    assert all(now < due <= now + 8.0 for due in dues)
    per_second = Counter(int(due - now) for due in dues)  # 1,000 tasks over 8 s: about 125 a second
    assert len(per_second) == 8 and max(per_second.values()) < 175, per_second
    # the same task keeps its phase: waits at the ceiling are exactly the ceiling
    again = schedule.staggered(ARNS[0], 8.0, dues[0])
    assert again == dues[0] + 8.0


def test_backoff_doubles_up_to_the_ceiling() -> None:
    assert [schedule.backoff(q) for q in range(8)] == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def _simulate(tasks: int, polls: int, interval: float) -> tuple[list[int], float]:
    """Poll ``tasks`` quiet tasks submitted together; describes per poll and the longest gap."""
    now = 1_000_000.0
    states: list[dict[str, Any]] = [{"task_arn": arn, "submitted_at": now} for arn in ARNS[:tasks]]
    counts, gap = [], 0.0
    for _ in range(polls):
        picked = schedule.pick_describes(enumerate(states), now, _never)
        for index in picked:
            state = states[index]
            gap = max(gap, now - schedule.last_described(state))
            schedule.after_describe(state, now, changed="described_at" not in state)
        gap = max([gap] + [now - schedule.last_described(s) for s in states])
        counts.append(len(picked))
        now += interval
    return counts, gap


def test_a_thousand_quiet_tasks_are_described_a_bounded_number_at_a_time_and_within_the_bound() -> None:
    counts, gap = _simulate(1000, polls=40, interval=2.0)
    # every poll stays within the budget plus what falls due at the bound (no lockstep bursts)
    assert max(counts) <= schedule.DESCRIBES_PER_POLL + 100, counts
    # the steady state is even: 1,000 tasks at one describe per 8 s, polled every 2 s, is 250 a poll
    assert max(counts[-10:]) - min(counts[-10:]) <= 100, counts
    assert sum(counts[-20:]) / 20 <= 300
    assert gap <= schedule.MAX_WAIT + 2.0


def test_with_more_tasks_than_the_budget_the_bound_still_holds() -> None:
    counts, gap = _simulate(1000, polls=30, interval=4.0)  # 1,000 / 8 s x 4 s = 500 due a poll
    assert gap <= schedule.MAX_WAIT + 4.0
    assert max(counts) <= 1000


def test_urgent_and_recently_changed_tasks_come_before_quiet_ones() -> None:
    now = 5000.0
    states: list[dict[str, Any]] = []
    for arn in ARNS[:600]:  # quiet for a while, all due
        states.append({"task_arn": arn, "submitted_at": 0.0, "described_at": now - 7.0, "describe_due": now - 1.0, "describe_quiet": 6})
    states[10]["describe_quiet"] = 0  # just changed
    states[20] = {"task_arn": "new", "submitted_at": now}  # just submitted, never described
    states[30]["stopped_seen_at"] = now  # stopping: must be described
    states[40]["described_at"] = now - schedule.MAX_WAIT  # at the bound: must be described
    states.append({"task_arn": None, "submitted_at": now})  # not started: never described
    picked = schedule.pick_describes(enumerate(states), now, lambda s: s.get("stopped_seen_at") is not None, budget=50)
    assert picked[:2] == [30, 40]
    assert picked[2:4] == [20, 10]
    assert len(picked) == 2 + schedule.MIN_DUE_DESCRIBES  # the floor, above the budget of 50
    assert 600 not in picked

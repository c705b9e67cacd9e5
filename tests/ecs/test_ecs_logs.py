"""The bulk log reader (``offload_ecs.logs.Reader``) against a CloudWatch Logs played in
memory: each line exactly once and in its stream's order, late events, a restarted driver
that knows only the handles, long answers read over several polls, the calls made.

The fake plays ``FilterLogEvents`` as CloudWatch documents it: events sorted by timestamp
then by ingestion, ``logStreamNamePrefix`` and ``startTime``, pages with a token that
holds the position (an event that becomes searchable behind it is not in that query), and
the time of the answer in its ``Date`` header. Nothing here talks to a server or sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

import pytest

from offload_ecs import logs

GROUP = "/offload/test"
MARKER = "offload-end-of-log abc"
START = 1_700_000_000.0


class FakeCloudWatch:
    """``FilterLogEvents`` of one account, on a clock the test moves."""

    def __init__(self, page: int = 10_000) -> None:
        self.now = START  # CloudWatch's clock (s)
        self.page = page
        self.events: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self._ids = 0

    def put(self, stream: str, message: str, stamp: float | None = None) -> None:
        """A line of ``stream``, stamped ``stamp`` (default: now), searchable from now on."""
        self._ids += 1
        when = self.now if stamp is None else stamp
        self.events.append({"logStreamName": stream, "timestamp": int(when * 1000), "message": message, "eventId": f"e{self._ids:08d}", "seq": self._ids})

    def call(self, service: str, operation: str, region: str | None = None, **params: Any) -> dict[str, Any]:
        assert (service, operation) == ("logs", "filter_log_events")
        assert params["logGroupName"] == GROUP and params["interleaved"] is True
        self.calls.append(params)
        prefix = params.get("logStreamNamePrefix", "")
        after = tuple(json.loads(params["nextToken"])) if "nextToken" in params else (-1, -1)
        found = sorted(
            (e for e in self.events if e["logStreamName"].startswith(prefix) and e["timestamp"] >= params.get("startTime", 0)),
            key=lambda e: (e["timestamp"], e["seq"]),
        )
        rest = [e for e in found if (e["timestamp"], e["seq"]) > after]
        page = rest[: min(self.page, params.get("limit", 10_000))]
        answer: dict[str, Any] = {
            "events": [{k: v for k, v in e.items() if k != "seq"} for e in page],
            "ResponseMetadata": {"HTTPHeaders": {"date": formatdate(self.now, usegmt=True)}},
        }
        if len(rest) > len(page):
            answer["nextToken"] = json.dumps([page[-1]["timestamp"], page[-1]["seq"]])
        return answer


class Driver:
    """One driver: a reader, the handle states it polls, the lines it handed out per stream."""

    def __init__(self, cloud: FakeCloudWatch, states: list[dict[str, Any]]) -> None:
        self.cloud = cloud
        self.clock = 0.0
        self.reader = logs.Reader(clock=lambda: self.clock, wall=lambda: cloud.now)
        self.states = states
        self.lines: dict[str, list[str]] = {s["log_stream"]: [] for s in states}
        self.changed: list[int] = []

    def poll(self, seconds: float = 2.0) -> int:
        """One poll, then ``seconds`` pass; the calls it made."""
        before = len(self.cloud.calls)
        updates = self.reader.read(self.cloud, list(enumerate(self.states)))  # type: ignore[arg-type]
        for index, (lines, changes) in updates.items():
            self.lines[self.states[index]["log_stream"]].extend(lines)
            self.states[index] = {**self.states[index], **changes}
        self.changed.append(len(updates))
        self.cloud.now += seconds
        self.clock += seconds
        return len(self.cloud.calls) - before

    def journaled(self) -> list[dict[str, Any]]:
        """The handle states as a journal keeps them (JSON)."""
        return [json.loads(json.dumps(s)) for s in self.states]


def state(stream: str, submitted: float = START) -> dict[str, Any]:
    return {"log_group": GROUP, "log_region": None, "log_stream": stream, "marker": MARKER, "submitted_at": submitted}


def streams(n: int) -> list[str]:
    return [f"offload/main/{i:032x}" for i in range(n)]


@pytest.fixture
def cloud() -> Iterator[FakeCloudWatch]:
    yield FakeCloudWatch()


def test_lines_of_many_streams_come_once_each_in_order_with_one_call_per_poll(cloud: FakeCloudWatch) -> None:
    names = streams(200)
    driver = Driver(cloud, [state(s) for s in names])
    for round_ in range(5):
        for i, name in enumerate(names):
            if (i + round_) % 3:  # some streams stay quiet some rounds
                cloud.put(name, f"{name[-3:]} {round_}a")
                cloud.put(name, f"{name[-3:]} {round_}b")
        assert driver.poll() == 1
    for _ in range(3):
        assert driver.poll() == 1
    for i, name in enumerate(names):
        expected = [f"{name[-3:]} {r}{x}" for r in range(5) if (i + r) % 3 for x in "ab"]
        assert driver.lines[name] == expected


def test_one_query_covers_the_streams_by_their_shared_prefix_and_drops_other_streams(cloud: FakeCloudWatch) -> None:
    ours = ["offload/main/a1", "offload/main/b2"]
    driver = Driver(cloud, [state(s) for s in ours])
    cloud.put("offload/main/c3", "another run's task")
    cloud.put("other/main/a1", "another definition")
    cloud.put(ours[1], "ours")
    driver.poll()
    assert cloud.calls[-1]["logStreamNamePrefix"] == "offload/main/"
    assert cloud.calls[-1]["startTime"] == int(START * 1000) - int(logs.LATE * 1000)
    assert driver.lines == {ours[0]: [], ours[1]: ["ours"]}
    assert logs.common_prefix(["offload/main/abc", "offload/main/abd"]) == "offload/main/ab"
    assert logs.common_prefix(["a/x", "b/x"]) == "" and logs.common_prefix([]) == ""
    alone = Driver(FakeCloudWatch(), [state("offload/main/a1"), state("sidecar/log/a1")])
    alone.poll()
    assert "logStreamNamePrefix" not in alone.cloud.calls[-1]  # nothing shared: the whole group


def test_a_late_event_stamped_before_lines_already_handed_out_comes_once(cloud: FakeCloudWatch) -> None:
    a, b = "offload/main/a", "offload/main/b"
    driver = Driver(cloud, [state(a), state(b)])
    cloud.now += 10
    cloud.put(a, "a1")
    cloud.put(b, "b1")
    driver.poll()  # a strict cursor would now be at b1's timestamp
    cloud.put(a, "a2, sent 6 s late", stamp=cloud.now - 6)
    cloud.put(b, "b2, sent 5 s late", stamp=cloud.now - 5)
    cloud.put(a, "a3")
    for _ in range(12):  # past the window: nothing again
        driver.poll()
    assert driver.lines == {a: ["a1", "a2, sent 6 s late", "a3"], b: ["b1", "b2, sent 5 s late"]}


def test_a_restarted_driver_from_the_journaled_handles_repeats_nothing_and_loses_nothing(cloud: FakeCloudWatch) -> None:
    names = streams(30)
    first = Driver(cloud, [state(s) for s in names])
    for round_ in range(40):  # 80 s: quiet streams, chatty ones, the window moving on
        for i, name in enumerate(names):
            if i % 5 == 0 or round_ % 10 == i % 10:
                cloud.put(name, f"{i} {round_}")
        first.poll()
    saved = first.journaled()
    handed = {name: list(lines) for name, lines in first.lines.items()}
    cloud.put(names[0], "written while no driver ran")
    cloud.put(names[1], "late, stamped before the last poll", stamp=cloud.now - 4)
    cloud.now += 30  # the driver was away 30 s
    cloud.put(names[2], "after the restart")
    second = Driver(cloud, saved)
    for _ in range(5):
        second.poll()
    for i, name in enumerate(names):
        expected = [f"{i} {r}" for r in range(40) if i % 5 == 0 or r % 10 == i % 10]
        expected += {0: ["written while no driver ran"], 1: ["late, stamped before the last poll"], 2: ["after the restart"]}.get(i, [])
        assert handed[name] + second.lines[name] == expected, name
    restart_start = cloud.calls[-5]["startTime"]  # how far back the restarted driver read
    assert restart_start >= int((START + 80 - 2 * logs.SLACK - logs.LATE - 2) * 1000)


def test_a_long_answer_is_read_over_several_polls_and_a_restart_midway_repeats_nothing() -> None:
    cloud = FakeCloudWatch(page=3)
    names = streams(4)
    first = Driver(cloud, [state(s) for s in names])
    for n in range(30):
        cloud.put(names[n % 4], f"line {n}")
    assert first.poll() == logs.MAX_PAGES  # 12 of 30 events; the rest at the next polls
    assert sum(map(len, first.lines.values())) == 3 * logs.MAX_PAGES
    assert "nextToken" in cloud.calls[-1]
    assert first.poll() == logs.MAX_PAGES and "nextToken" in cloud.calls[-1]  # the same query, continued
    second = Driver(cloud, first.journaled())  # the driver dies in the middle of the answer
    for _ in range(5):
        second.poll()
    for i, name in enumerate(names):
        assert first.lines[name] + second.lines[name] == [f"line {n}" for n in range(i, 30, 4)]


def test_a_stream_that_starts_being_followed_while_a_query_is_read_waits_for_the_next_one() -> None:
    cloud = FakeCloudWatch(page=2)
    a, b = "offload/main/a", "offload/main/ab"  # b's events are in the answer to a's query
    driver = Driver(cloud, [state(a)])
    for n in range(12):
        cloud.put(a, f"a{n}")
        cloud.put(b, f"b{n}")
    driver.poll()  # 8 of 24 events: b's are not ours yet
    driver.states.append(state(b))
    driver.lines[b] = []
    for _ in range(6):
        driver.poll()
    assert driver.lines == {a: [f"a{n}" for n in range(12)], b: [f"b{n}" for n in range(12)]}


def test_the_end_of_log_marker_is_not_a_line_and_its_text_before_it_is(cloud: FakeCloudWatch) -> None:
    name = "offload/main/a"
    driver = Driver(cloud, [state(name)])
    cloud.put(name, "working")
    cloud.put(name, "no newline at the end" + MARKER + "\n")
    driver.poll()
    assert driver.lines[name] == ["working", "no newline at the end"]
    assert driver.states[0]["marker_seen"] is True


def test_quiet_streams_keep_their_handles_and_catch_up_now_and_then(cloud: FakeCloudWatch) -> None:
    names = streams(1000)
    driver = Driver(cloud, [state(s) for s in names])
    polls = int(3 * logs.SLACK / 2)
    for _ in range(polls):
        assert driver.poll() == 1
    assert max(driver.changed) <= 1000 // 10  # staggered: never all handles at once
    assert all(s.get("log_after") is not None for s in driver.states)  # each caught up at least once
    newest = int((cloud.now - 2 * logs.SLACK - logs.LATE - 6) * 1000)
    assert min(int(s["log_after"]) for s in driver.states) >= newest


def test_handles_keep_the_ids_of_the_window_only(cloud: FakeCloudWatch) -> None:
    name = "offload/main/a"
    driver = Driver(cloud, [state(name)])
    for n in range(60):  # 2 minutes, a line a poll
        cloud.put(name, f"line {n}")
        driver.poll()
    seen = driver.states[0]["log_seen"]
    assert 0 < len(seen) <= logs.LATE / 2 + 2
    assert all(stamp >= driver.states[0]["log_after"] for stamp in seen.values())
    assert driver.lines[name] == [f"line {n}" for n in range(60)]


def test_a_log_group_is_queried_at_most_once_per_interval(cloud: FakeCloudWatch) -> None:
    driver = Driver(cloud, [state("offload/main/a")])
    assert driver.poll(seconds=0.4) == 1
    assert driver.poll(seconds=0.4) == 0
    assert driver.poll(seconds=0.4) == 0
    assert driver.poll(seconds=0.4) == 1  # 1.2 s after the first

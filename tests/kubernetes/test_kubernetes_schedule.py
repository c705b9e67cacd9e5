"""Which logs a poll reads (``offload_kubernetes.schedule``) and what the tracking makes of it,
without a cluster: a fake API server that lists pods and serves their logs, and a fake clock.
Every pod's lines must come exactly once and in order however the cap and the rotation cut
the reads, and no pod may wait longer than its turn."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from k8s_harness.logstore import parse_time, rfc3339nano

from offload import Handle, TaskState
from offload_kubernetes import schedule, tracking
from offload_kubernetes.client import KubeError
from offload_kubernetes.config import KubernetesConfig
from offload_kubernetes.schedule import Want, next_due, pick

NS, PROJECT, MARKER = "ns", "proj", "offload-end-of-log 0123"
START = 1_800_000_000.0


def test_ended_pods_come_first_then_the_due_ones_longest_overdue_first_within_the_cap() -> None:
    wants = [Want("late", False, 5.0), Want("later", False, 1.0), Want("ended", True, 99.0), Want("not-due", False, 11.0), Want("new", False, 0.0)]
    assert pick(wants, now=10.0, cap=10) == ["ended", "new", "later", "late"]
    assert pick(wants, now=10.0, cap=2) == ["ended", "new"]


def test_spacing_keeps_few_pods_at_every_poll_and_bounds_the_reads_per_second_of_many() -> None:
    assert next_due(100.0, 0, 8) - 100.0 < 0.1  # a handful of pods: read again at the next poll
    assert next_due(100.0, 0, 1000) - 100.0 == schedule.MAX_WAIT  # 1,000: each every MAX_WAIT s
    assert next_due(100.0, 1, 8) - 100.0 == schedule.QUIET_FIRST  # quiet: the backoff
    assert next_due(100.0, 9, 8) - 100.0 == schedule.QUIET_MAX
    assert next_due(100.0, 9, 100_000) - 100.0 == schedule.MAX_WAIT  # never longer than MAX_WAIT


def test_the_rotation_reads_every_pod_in_turn_none_starved() -> None:
    due = dict.fromkeys(range(20), 0.0)
    last: dict[int, int] = {}
    gaps: list[int] = []
    for poll in range(60):
        now = START + poll  # every pod is due again at every poll (spacing < 1 s): the cap decides
        for pod in pick([Want(p, False, d) for p, d in due.items()], now, cap=3):
            gaps.append(poll - last.get(pod, -1))
            last[pod] = poll
            due[pod] = next_due(now, 0, len(due))
    assert set(last) == set(due)
    assert max(gaps) <= 7  # 20 pods, 3 reads per poll: each read at least every ceil(20 / 3) polls


class FakeCluster:
    """Pods of one Job each, their logs (``timestamps=true``, ``sinceTime`` in whole seconds)."""

    def __init__(self, pods: int) -> None:
        self.names = [f"p{i}" for i in range(pods)]
        self.logs: dict[str, list[tuple[int, str]]] = {n: [] for n in self.names}
        self.ended: set[str] = set()
        self.failing: set[str] = set()  # log reads answered 503 (then the pod is dropped from it)
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    def write(self, name: str, at: float, text: str) -> None:
        self.logs[name].append((int(at * 1e9), text))

    def pod(self, name: str) -> dict[str, Any]:
        done = name in self.ended
        state = {"terminated": {"exitCode": 0}} if done else {"running": {}}
        return {
            "metadata": {"name": name, "uid": f"pod-{name}", "labels": {"controller-uid": f"job-{name}"}, "creationTimestamp": "2027-01-15T08:00:00Z"},
            "status": {"phase": "Succeeded" if done else "Running", "containerStatuses": [{"name": "task", "state": state}]},
        }

    def request(self, method: str, path: str, query: dict[str, Any] | None = None, raw: bool = False, **_: Any) -> Any:
        with self.lock:
            self.calls.append((method, path))
        if path == f"/api/v1/namespaces/{NS}/pods":
            return {"items": [self.pod(n) for n in self.names]}
        name = path.split("/")[-2]
        if name in self.failing:
            self.failing.discard(name)
            raise KubeError("kubernetes: 503 busy", 503)
        since = parse_time(query["sinceTime"]) if query and "sinceTime" in query else 0
        return "".join(f"{rfc3339nano(at)} {text}\n" for at, text in self.logs[name] if at >= since).encode()

    def log_reads(self) -> int:
        with self.lock:
            reads = sum(path.endswith("/log") for _, path in self.calls)
            self.calls.clear()
        return reads


def handle(name: str) -> Handle:
    state = {"namespace": NS, "project": PROJECT, "job": f"job-{name}", "job_uid": f"job-{name}", "marker": MARKER, "submitted_at": START}
    return Handle(backend="kubernetes", task_id=name, io_path="/tmp/io", state=state)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [START]

    class Time:
        @staticmethod
        def time() -> float:
            return now[0]

    monkeypatch.setattr(tracking, "time", Time)
    return now


def test_with_more_pods_than_the_cap_every_line_comes_once_in_order_and_ended_pods_wait_their_read(
    clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schedule, "LOG_READS_PER_POLL", 4)
    cluster = FakeCluster(13)
    handles = [handle(n) for n in cluster.names]
    seen: dict[str, list[str]] = {n: [] for n in cluster.names}
    final: dict[str, TaskState] = {}
    written = 0
    for poll in range(200):
        clock[0] += 0.3  # several lines share a second: the cursor's skip is exercised too
        if written < 30:
            for name in cluster.names:
                cluster.write(name, clock[0], f"{name} line {written}")
            written += 1
        elif written == 30:
            cluster.ended.update(cluster.names)  # all end at once: more than one poll's cap
            written += 1
        if poll == 5:
            cluster.failing.update(cluster.names[:6])  # a busy server: those reads come again later
        statuses = tracking.poll(cluster, KubernetesConfig(), handles, set())  # type: ignore[arg-type]
        assert cluster.log_reads() <= 4
        for i, status in enumerate(statuses):
            handles[i] = status.handle or handles[i]
            seen[handles[i].task_id].extend(status.logs)
            if status.state.finished:
                final[handles[i].task_id] = status.state
        if len(final) == len(cluster.names):
            break
    assert final == dict.fromkeys(cluster.names, TaskState.SUCCEEDED)
    for name, lines in seen.items():
        assert lines == [f"{name} line {i}" for i in range(30)], name


def test_a_poll_reads_at_most_the_cap_and_each_pod_waits_at_most_its_turn(clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schedule, "LOG_READS_PER_POLL", 3)
    cluster = FakeCluster(7)
    handles = [handle(n) for n in cluster.names]
    reads: dict[str, list[int]] = {n: [] for n in cluster.names}
    for poll in range(12):
        clock[0] += 10  # every pod has a new line and is due at every poll: the cap decides
        for name in cluster.names:
            cluster.write(name, clock[0], "x")
        statuses = tracking.poll(cluster, KubernetesConfig(), handles, set())  # type: ignore[arg-type]
        for h, s in zip(handles, statuses, strict=True):
            if s.logs:
                reads[h.task_id].append(poll)
        handles = [s.handle or h for s, h in zip(statuses, handles, strict=True)]
        assert cluster.log_reads() == 3
    for name, polls in reads.items():
        gaps = [b - a for a, b in zip([-1, *polls], polls, strict=False)]
        assert max(gaps) <= 3, (name, polls)  # 7 pods, 3 reads a poll: read at least every ceil(7 / 3) polls

"""Several tasks' logs, read in bulk through the real backend, moto's CloudWatch Logs and the
test agent: every line of every task arrives exactly once and in order, also when the
driver is replaced by one that knows only the stored handles, and when ``offload run`` is
killed with SIGKILL in the middle of a log query and run again.

The harness plays ``logStreamNamePrefix`` as CloudWatch does (moto ignores it); the moment of the SIGKILL is
made exact by holding back the answer to ``FilterLogEvents``, not by timing."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml
from ecs_harness.world import IMAGE, LOG_GROUP, World

import offload
from offload import from_json, to_json
from offload.testing import make_request
from offload_ecs import logs

TASK = {"docker": {"image": IMAGE}}
LINES = 12  # per phase


def script(name: str, gate: Path) -> str:
    """Lines 1..12 over about 2 s, then (once ``gate`` exists) 13..24; a few at a time, so polls split them."""
    g = shlex.quote(str(gate))
    return (
        f"i=1; while [ $i -le {LINES} ]; do echo {name} line $i; [ $((i % 3)) -eq 0 ] && sleep 0.5; i=$((i + 1)); done; "
        f"while [ ! -f {g} ]; do sleep 0.05; done; "
        f"while [ $i -le {2 * LINES} ]; do echo {name} line $i; [ $((i % 5)) -eq 0 ] && sleep 0.2; i=$((i + 1)); done"
    )


def expected(name: str, upto: int = 2 * LINES) -> list[str]:
    return [f"{name} line {i}" for i in range(1, upto + 1)]


def eventually(check: Callable[[], bool], what: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {limit} s")
        time.sleep(0.05)


class Follower:
    """Polls a set of handles with one executor and keeps each task's lines."""

    def __init__(self, executor: offload.Executor, handles: Sequence[offload.Handle]) -> None:
        self.executor = executor
        self.handles = list(handles)
        self.lines: dict[str, list[str]] = {h.task_id: [] for h in handles}
        self.states: dict[str, offload.TaskState] = {}

    def poll(self) -> None:
        statuses = self.executor.poll(self.handles)
        for i, status in enumerate(statuses):
            handle = self.handles[i]
            self.lines[handle.task_id].extend(line for line in status.logs if not line.startswith("offload:"))
            self.states[handle.task_id] = status.state
            self.handles[i] = status.handle or handle

    def until(self, check: Callable[[], bool], what: str) -> None:
        def step() -> bool:
            self.poll()
            return check()

        eventually(step, what)


def test_several_tasks_lines_arrive_once_and_in_order_across_a_driver_restart_from_stored_handles(
    world: World, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window of 1 s (the agent's lines are never late): the handles' positions move on and
    # their ids are dropped while the test runs, so the new driver relies on both.
    monkeypatch.setattr(logs, "LATE", 1.0)
    gate = tmp_path / "gate"
    names = [f"t{i}" for i in range(5)]
    requests = [make_request(project, script(name, gate), TASK) for name in names]
    by_id = {r.task_id: name for r, name in zip(requests, names, strict=True)}
    gets = world.server.faults.calls["GetLogEvents"]
    assert world.server.filter_logs is not None
    asked = len(world.server.filter_logs.prefixes)
    with offload.Executor(world.config()) as executor:
        first = Follower(executor, [executor.submit(r) for r in requests])
        first.until(lambda: all(len(first.lines[t]) >= LINES for t in by_id), "the first half of every task's log")
        streams = [str(h.state["log_stream"]) for h in first.handles]
        other = logs.common_prefix(streams) + "zz-another-run"  # under the query's prefix, not ours
        world.logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=other)
        world.logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=other, logEvents=[{"timestamp": int(time.time() * 1000), "message": "t0 line 13"}])
        saved = [to_json(h) for h in first.handles]  # what the journal holds
        handed = {t: list(lines) for t, lines in first.lines.items()}
        gate.write_text("")
        for _ in range(3):  # the old driver goes on a little: what it hands out now is not journaled
            first.poll()
            time.sleep(0.3)
    with offload.Executor(world.config()) as executor:  # a new driver: no memory but the handles
        second = Follower(executor, [from_json(s, offload.Handle) for s in saved])
        second.until(lambda: all(second.states.get(t, offload.TaskState.RUNNING).finished for t in by_id), "every task finished")
        results = [executor.collect(h) for h in second.handles]
    assert all(r.ok for r in results), [r.error for r in results]
    for task_id, name in by_id.items():
        assert handed[task_id] + second.lines[task_id] == expected(name), task_id
    assert world.server.faults.calls["GetLogEvents"] == gets
    prefixes = world.server.filter_logs.prefixes[asked:]
    assert prefixes and all(p.startswith("offload/main/") for p in prefixes), prefixes  # the definition's prefix, then the container's


def test_one_log_query_per_poll_however_many_tasks(world: World, project: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    names = [f"q{i}" for i in range(8)]
    requests = [make_request(project, script(name, gate), TASK) for name in names]
    with offload.Executor(world.config()) as executor:
        follower = Follower(executor, [executor.submit(r) for r in requests])
        follower.until(lambda: all(len(lines) >= LINES for lines in follower.lines.values()), "the first half of every task's log")
        calls = []
        for _ in range(30):
            before = world.server.faults.calls["FilterLogEvents"]
            follower.poll()
            calls.append(world.server.faults.calls["FilterLogEvents"] - before)
            time.sleep(0.05)
        gate.write_text("")
        follower.until(lambda: all(s.finished for s in follower.states.values()), "every task finished")
    assert max(calls) == 1, calls  # 8 quiet streams, one page of one query
    for request, name in zip(requests, names, strict=True):
        assert follower.lines[request.task_id] == expected(name)


def log_lines(project: Path) -> dict[str, list[str]]:
    """Each task's lines in the run's log files (``.offload/logs/<run>/<task>.<attempt>.log``)."""
    found: dict[str, list[str]] = {}
    for path in sorted(project.glob(".offload/logs/*/*.log")):
        for line in path.read_text(errors="replace").splitlines():
            name = line.split(" ", 1)[0]
            if line.startswith("p") and name[1:].isdigit():
                found.setdefault(name, []).append(line)
    return found


def test_offload_run_killed_during_a_log_query_and_run_again_loses_and_repeats_no_line(world: World, tmp_path: Path) -> None:
    project, gate = tmp_path / "project", tmp_path / "gate"
    project.mkdir()
    tasks = "".join(f"  +p{i}:\n    sh>: {shlex.quote(script(f'p{i}', gate))}\n" for i in range(3))
    (project / "flow.dig").write_text(f"_export:\n  docker:\n    image: {IMAGE}\n+all:\n  _parallel: true\n{tasks}")
    config = tmp_path / "offload.yml"
    config.write_text(yaml.safe_dump({"command_executor": {"ecs": world.section()}}))
    command = [sys.executable, "-m", "offload.workflow.cli", "run", "flow.dig", "-c", str(config)]
    driver = subprocess.Popen(command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: all(log_lines(project).get(f"p{i}") == expected(f"p{i}", LINES) for i in range(3)), "the first half of every log")
        hold = world.server.faults.hold("FilterLogEvents")
        assert hold.reached.wait(60), "the driver never read the logs again"
        driver.send_signal(signal.SIGKILL)  # inside a poll: lines and handles of the last one are kept
        driver.wait(30)
    finally:
        world.server.faults.clear()  # releases the hold
        if driver.poll() is None:
            driver.kill()
    gate.write_text("")
    again = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert log_lines(project) == {f"p{i}": expected(f"p{i}") for i in range(3)}
